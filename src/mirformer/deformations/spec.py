"""Reading ``--deform`` specs (``noise:snr=20,10``) into settings, with errors that name the spec."""

from __future__ import annotations

import math

from mirformer.deformations.base import FAMILIES, Deformation, number
from mirformer.errors import ConfigError

EXAMPLE = "noise:snr=20,10"


def parse_deform(spec: str) -> list[Deformation]:
    """The settings one spec asks for, in its order.

    Parameters
    ----------
    spec : str
        ``FAMILY:PARAM=V1,V2,...``, e.g. ``"noise:snr=20,10"``, ``"mp3:kbps=64"``, ``"pitch:semitones=-1,1"``.

    Returns
    -------
    deformations : list of Deformation
        One per value.

    Raises
    ------
    ConfigError
        Naming the spec and the cause: not of that form, an unknown family (the known ones listed),
        a wrong parameter (the right one given), no values, a value that is not a number or out of
        the family's range (the range given), a value given twice.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"deformation spec {spec!r}: must be a string like {EXAMPLE!r}")
    name, colon, rest = spec.partition(":")
    param, equals, values = rest.partition("=")
    name, param = name.strip(), param.strip()
    if not (colon and equals):
        raise ConfigError(f"deformation spec {spec!r}: expected FAMILY:PARAM=V1,V2,... like {EXAMPLE!r}")
    if name not in FAMILIES:
        raise ConfigError(f"deformation spec {spec!r}: unknown family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    family = FAMILIES[name]
    if param != family.param:
        raise ConfigError(f"deformation spec {spec!r}: {name} takes {family.param}=..., not {param!r}=...")
    texts = [t.strip() for t in values.split(",")]
    if texts == [""]:
        raise ConfigError(f"deformation spec {spec!r}: no values; {family.param} takes {family.valid()}")
    out = []
    for text in texts:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(f"deformation spec {spec!r}: {text!r} is not a number; "
                              f"{family.param} takes {family.valid()}")
        why = family.problem(value)
        if why:
            raise ConfigError(f"deformation spec {spec!r}: {why}")
        out.append(Deformation(name, value))
    _refuse_duplicates(out, f"deformation spec {spec!r}")
    return out


def parse_deforms(specs: list[str]) -> list[Deformation]:
    """The settings of several specs, in order (``ConfigError`` as ``parse_deform``'s, or for a
    setting asked twice, e.g. ``noise:snr=20`` and ``noise:snr=20,10``)."""
    if isinstance(specs, str):  # iterating it would read one character per spec
        raise ConfigError(f"deformation specs must be a list of specs like [{EXAMPLE!r}], got the string {specs!r}")
    out = [d for spec in specs for d in parse_deform(spec)]
    _refuse_duplicates(out, "deformation specs " + ", ".join(repr(s) for s in specs))
    return out


def _refuse_duplicates(deformations: list[Deformation], where: str) -> None:
    seen = set()
    for d in deformations:
        if d.name in seen:
            raise ConfigError(f"{where}: {d.family} {FAMILIES[d.family].param}={number(d.value)} is asked twice")
        seen.add(d.name)
