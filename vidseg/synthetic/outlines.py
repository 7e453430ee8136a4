"""Outlines of the box faces: what makes a box read as a car, a bus, a person, a sign or a tree crown.

A face's outline is, along its normalised length a in [0, 1], the interval [bottom(a), top(a)] of heights (m)
it covers, both piecewise linear (knots). `Outlines` numbers them; the renderer evaluates every face's outline
at once through `knots()`, which lays outline k on [2k, 2k + 1] of one function each for top and bottom.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Outlines"]


def _kn(*pairs) -> tuple[np.ndarray, np.ndarray]:
    k = np.array(pairs, np.float64).reshape(-1, 2)
    return k[:, 0], k[:, 1]


def _steps(base: float, low: float, spans) -> tuple[np.ndarray, np.ndarray]:
    """A profile bottom at `base` except `low` over the (a0, a1) spans (wheels, legs)."""
    pts = [(0.0, base)]
    for a0, a1 in spans:
        pts += [(a0 - 1e-4, base), (a0, low), (a1, low), (a1 + 1e-4, base)]
    pts.append((1.0, base))
    return _kn(*pts)


class Outlines:
    """The outline table of one scene: the standard shapes (`ids`: name -> id) and any added later (tree crowns).

    Ids are handed out in the order outlines are added, so a scene that generates its content in the same order
    numbers them the same way (the renderer's arithmetic on 2k + a depends on k).
    """

    def __init__(self) -> None:
        self._profiles: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._knot_cache = None
        self.ids = self._standard()

    def add(self, top, bottom) -> int:
        """Add an outline (top and bottom knots: (a, height) arrays); returns its id."""
        kt, vt = top
        kb, vb = bottom
        self._profiles.append((kt, vt, kb, vb))
        return len(self._profiles) - 1

    def _standard(self) -> dict[str, int]:
        p = {}
        flat1 = _kn((0, 1), (1, 1))
        zero = _kn((0, 0), (1, 0))
        p["flat"] = self.add(flat1, zero)
        car_top = _kn((0, 0.75), (0.03, 0.95), (0.12, 1.0), (0.2, 1.03), (0.3, 1.45), (0.75, 1.45), (0.85, 1.02),
                      (0.97, 0.9), (1, 0.72))
        car_bot = _steps(0.25, 0.0, [(0.1, 0.25), (0.75, 0.9)])
        p["car_side"] = self.add(car_top, car_bot)
        p["car_side_flip"] = self.add((1 - car_top[0][::-1], car_top[1][::-1]),
                                           (1 - car_bot[0][::-1], car_bot[1][::-1]))
        p["car_end"] = self.add(_kn((0, 0.9), (0.08, 1.0), (0.2, 1.42), (0.8, 1.42), (0.92, 1.0), (1, 0.9)),
                                     _steps(0.0, 0.25, [(0.14, 0.86)]))
        bus_bot = _steps(0.3, 0.0, [(0.1, 0.2), (0.72, 0.82)])
        p["bus_side"] = self.add(_kn((0, 3.1), (1, 3.1)), bus_bot)
        p["bus_side_flip"] = self.add(_kn((0, 3.1), (1, 3.1)), (1 - bus_bot[0][::-1], bus_bot[1][::-1]))
        p["bus_end"] = self.add(_kn((0, 3.0), (0.05, 3.1), (0.95, 3.1), (1, 3.0)), _kn((0, 0.0), (1, 0.0)))
        tr_top = _kn((0, 3.4), (0.74, 3.4), (0.7401, 1.1), (0.78, 1.1), (0.7801, 2.8), (0.97, 2.8), (1, 2.5))
        tr_bot = _steps(0.4, 0.0, [(0.08, 0.16), (0.2, 0.28), (0.84, 0.92)])
        p["truck_side"] = self.add(tr_top, tr_bot)
        p["truck_side_flip"] = self.add((1 - tr_top[0][::-1], tr_top[1][::-1]),
                                             (1 - tr_bot[0][::-1], tr_bot[1][::-1]))
        p["truck_end"] = self.add(_kn((0, 3.4), (1, 3.4)), _kn((0, 0.0), (1, 0.0)))
        p["person_front"] = self.add(
            _kn((0, 0.85), (0.12, 1.38), (0.3, 1.48), (0.36, 1.55), (0.42, 1.8), (0.58, 1.8), (0.64, 1.55),
                (0.7, 1.48), (0.88, 1.38), (1, 0.85)),
            _kn((0, 0.95), (0.08, 0.95), (0.0801, 0), (0.46, 0), (0.47, 0.8), (0.53, 0.8), (0.54, 0),
                (0.92, 0), (0.9201, 0.95), (1, 0.95)))
        p["person_side"] = self.add(
            _kn((0, 1.3), (0.2, 1.45), (0.3, 1.6), (0.35, 1.8), (0.7, 1.8), (0.8, 1.5), (1, 1.3)), zero)
        p["rider_front"] = self.add(
            _kn((0, 1.3), (0.2, 1.45), (0.35, 1.55), (0.4, 1.75), (0.6, 1.75), (0.65, 1.55), (0.8, 1.45), (1, 1.3)),
            _kn((0, 0.95), (0.2, 0.95), (0.25, 0.35), (0.4, 0.35), (0.45, 0.95), (0.55, 0.95), (0.6, 0.35),
                (0.75, 0.35), (0.8, 0.95), (1, 0.95)))
        p["rider_side"] = self.add(_kn((0, 1.2), (0.3, 1.5), (0.5, 1.75), (0.8, 1.75), (1, 1.3)),
                                        _kn((0, 0.9), (0.3, 0.9), (0.5, 0.35), (0.7, 0.35), (1, 0.9)))
        p["bike_side"] = self.add(
            _kn((0, 0.72), (0.3, 0.72), (0.35, 0.95), (0.4, 0.95), (0.7, 0.9), (0.8, 1.05), (0.85, 1.05), (1, 0.72)),
            zero)
        p["moto_side"] = self.add(_kn((0, 0.7), (0.2, 0.85), (0.5, 1.0), (0.75, 1.1), (0.85, 1.15), (1, 0.8)),
                                       zero)
        for name in ("bike_side", "moto_side"):
            kt, vt, kb, vb = self._profiles[p[name]]
            p[name + "_flip"] = self.add((1 - kt[::-1], vt[::-1]), (1 - kb[::-1], vb[::-1]))
        p["two_wheel_end"] = self.add(_kn((0, 0.8), (0.2, 1.05), (0.8, 1.05), (1, 0.8)), zero)
        disc = np.linspace(0, 1, 17)
        half = 0.35 * np.sqrt(np.clip(1 - (2 * disc - 1) ** 2, 0, 1))
        p["sign_disc"] = self.add((disc, 2.35 + half), (disc, 2.35 - half))
        p["sign_tri"] = self.add(_kn((0, 2.0), (0.5, 2.65), (1, 2.0)), _kn((0, 2.0), (1, 2.0)))
        p["sign_rect"] = self.add(_kn((0, 2.7), (1, 2.7)), _kn((0, 2.0), (1, 2.0)))
        p["tlight"] = self.add(_kn((0, 4.2), (1, 4.2)), _kn((0, 3.2), (1, 3.2)))
        return p

    def knots(self) -> tuple[np.ndarray, ...]:
        """All outline profiles as one piecewise-linear function each for top and bottom: profile k lives on
        [2k, 2k + 1], so one np.interp evaluates every face's outline at once."""
        n = len(self._profiles)
        if self._knot_cache is None or self._knot_cache[0] != n:
            kt = np.concatenate([2 * k + p[0] for k, p in enumerate(self._profiles)])
            vt = np.concatenate([p[1] for p in self._profiles])
            kb = np.concatenate([2 * k + p[2] for k, p in enumerate(self._profiles)])
            vb = np.concatenate([p[3] for p in self._profiles])
            self._knot_cache = (n, kt, vt, kb, vb)
        return self._knot_cache[1:]

