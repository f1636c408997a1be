"""Every numeric option, on every command and in the Python API, is checked by one rule (issue 25).

Whatever is thrown at an option (any float, a 30-digit integer, NaN, infinities, any text) is either
accepted with a value in the option's documented range, or refused by the parser with exit 2 and
ONE line naming the option: never a traceback, never a run that trains forever or writes zeros.
The commands are stopped after parsing (``run_command`` replaced), so nothing trains or reads a file.

The Python entry points (``sharpen``, ``super_resolve``) answer wrong types and values with one-line
:class:`~geo_med_sr.errors.GeoMedSRError` subclasses before any work (in an empty folder, on inputs
that do not exist: whatever is accepted then fails on the missing input, never deeper).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import os
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import geo_med_sr
from geo_med_sr.errors import ConfigError, GeoMedSRError

#: the module (``geo_med_sr.cli.main`` the attribute is the function of the same name).
cli_main = importlib.import_module("geo_med_sr.cli.main")


# ------------------------------------------------------------------ what each option takes (the spec, stated here)
def _real(low: float, high: float, *, above: bool = True):
    """A finite float in (low, high] (``above``) or [low, high]."""
    return lambda v: isinstance(v, float) and math.isfinite(v) and (v > low if above else v >= low) and v <= high


def _whole(low: int, high: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


BUDGET = _real(0, 7 * 24 * 3600)
STEPS = _whole(1, 2**31 - 1)
SEED = _whole(0, 2**32 - 1)
OFFSET = _real(-(2**24), 2**24, above=False)
PATCH = _whole(1, 65536)
SECONDS = _real(0, 24 * 3600)
PORT = _whole(1, 65535)
MM = _real(0, 1000)

#: (command line up to the option, {option: what it takes})
COMMANDS = {
    "sharpen": (
        ["sharpen", "S2", "out.tif"],
        {
            "--budget": BUDGET,
            "--steps": _whole(0, 2**31 - 1),  # 0: the --model unchanged (documented)
            "--seed": SEED,
            "--offset": OFFSET,
            "--patch-size": PATCH,
        },
    ),
    "evaluate --sharpen": (
        ["evaluate", "--sharpen", "S2"],
        {"--budget": BUDGET, "--steps": STEPS, "--seed": SEED, "--offset": OFFSET, "--ratio": _whole(2, 1024)},
    ),
    "evaluate": (
        ["evaluate", "ref.nii", "--scale", "2"],
        {"--budget": BUDGET, "--steps": STEPS, "--patch-size": PATCH},
    ),
    "upscale": (
        ["upscale", "in.nii", "out.nii", "--scale", "2"],
        {
            "--budget": BUDGET,
            "--steps": STEPS,
            "--patch-size": PATCH,
            "--batch-size": _whole(1, 4096),
            "--fill-radius": _whole(0, 65536),
            "--slice-thickness": MM,
            "--target-spacing": MM,
        },
    ),
    "batch": (
        ["batch", "in.tif", "--out-dir", "out", "--scale", "2"],
        {"--workers": _whole(1, 1024), "--threads": _whole(1, 1024), "--budget": BUDGET, "--patch-size": PATCH},
    ),
    "batch --sharpen": (
        ["batch", "--sharpen", "S2", "--out-dir", "out"],
        {
            "--workers": _whole(1, 1024),
            "--threads": _whole(1, 1024),
            "--budget": BUDGET,
            "--steps": _whole(0, 2**31 - 1),  # as sharpen's
            "--seed": SEED,
            "--offset": OFFSET,
            "--patch-size": PATCH,
        },
    ),
    "train": (["train", "--data", "d.nii", "--out", "m.safetensors"], {"--steps": STEPS, "--seed": SEED}),
    "dicom-node": (
        ["dicom-node", "--ae-title", "SR", "--port", "11112"],
        {"--idle": SECONDS, "--retry": SECONDS, "--port": PORT, "--return-port": PORT},
    ),
}
CASES = [(command, option) for command, (_, options) in COMMANDS.items() for option in options]

#: what users type, and what an audit throws: any float's repr, huge integers, any text, the odd forms.
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=30).filter(lambda t: t != "--"),  # "--opt=--": argparse's end-of-options marker, no value
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e308", "-1e308", "0", "-1", "1_000", "0x10", " 7 ", "5.0", ""]),
)


def parse(argv: list[str]) -> tuple[int, object, str]:
    """``main(argv)`` stopped after parsing: (exit status, the parsed namespace or None, stderr)."""
    seen: list[object] = []
    err = io.StringIO()
    with (
        mock.patch.object(cli_main, "run_command", lambda run, args: seen.append(args) or 0),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            code = cli_main.main(argv)
        except SystemExit as exc:  # argparse's refusal
            code = exc.code
    return code, (seen[0] if seen else None), err.getvalue()


def _attr(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def assert_one_line_refusal(code: int, err: str, option: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("geo-med-sr") and "error:" in lines[0], lines[0]
    assert option in lines[0], lines[0]


@pytest.mark.parametrize("command,option", CASES, ids=[f"{c} {o}" for c, o in CASES])
@settings(max_examples=60, deadline=None)
@given(value=VALUES)
def test_every_numeric_option_is_accepted_in_range_or_refused_in_one_line(command, option, value):
    prefix, options = COMMANDS[command]
    code, args, err = parse([*prefix, f"{option}={value}"])
    if code == 0:
        parsed = getattr(args, _attr(option))
        parsed = parsed[-1] if isinstance(parsed, list) else parsed  # --ratio repeats
        assert options[option](parsed), f"{command} {option}={value!r} accepted as {parsed!r}"
    else:
        assert_one_line_refusal(code, err, option)


@pytest.mark.parametrize(
    "argv,option,words",
    [
        (["sharpen", "S2", "o.tif", "--budget", "inf"], "--budget", "finite number of seconds"),
        (["evaluate", "--sharpen", "S2", "--budget", "-1"], "--budget", "seconds > 0"),
        (["sharpen", "S2", "o.tif", "--seed", "-1"], "--seed", "4294967295"),
        (["sharpen", "S2", "o.tif", "--seed", "1234567890123456789012"], "--seed", "4294967295"),
        (["evaluate", "--sharpen", "S2", "--steps", "0"], "--steps", "a positive integer"),
        (["sharpen", "S2", "o.tif", "--offset", "1e308"], "--offset", "overflows"),
        (["sharpen", "S2", "o.tif", "--offset", "nan"], "--offset", "finite DN offset"),
        (["dicom-node", "--ae-title", "SR", "--port", "11112", "--idle", "nan"], "--idle", "finite number of seconds"),
        (["train", "--data", "d", "--out", "m.safetensors", "--seed", "-1"], "--seed", "0 to"),
    ],
)
def test_the_audit_values_are_refused_in_one_line_naming_the_option(argv, option, words):
    code, _, err = parse(argv)
    assert_one_line_refusal(code, err, option)
    assert words in err, err


def test_steps_0_stays_meaningful_for_sharpen():
    """``sharpen --method self --model M --steps 0`` is "the model unchanged": still parsed."""
    code, args, _ = parse(["sharpen", "S2", "o.tif", "--method", "self", "--model", "m", "--steps", "0"])
    assert code == 0 and args.steps == 0


# ------------------------------------------------------------------ the Python API
def test_readme_python_api_names_resolve():
    """``geo_med_sr.sharpen`` (the README's call) is the function; the lazy entry points are listed by ``dir``."""
    from geo_med_sr.sharpening.pipeline import sharpen

    assert geo_med_sr.sharpen is sharpen
    assert {"sharpen", "super_resolve", "batch"} <= set(geo_med_sr.__all__) & set(dir(geo_med_sr))
    with pytest.raises(AttributeError, match="no attribute 'sharpening_typo'"):
        geo_med_sr.sharpening_typo  # noqa: B018


#: anything a caller might pass by mistake.
ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=8),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(object()),
)


def _number(v: object) -> bool:
    """A Python int or a finite float (never a bool)."""
    return not isinstance(v, bool) and (isinstance(v, int) or (isinstance(v, float) and math.isfinite(v)))


def _whole_number(v: object) -> bool:
    """An int, or a float without a fractional part (never a bool)."""
    return _number(v) and (isinstance(v, int) or float(v).is_integer())


#: the numeric keywords of ``sharpen`` and the values each takes (None: the default, where there is one).
SHARPEN_NUMBERS = {
    "budget": lambda v: v is None or (_number(v) and BUDGET(float(v))),
    "steps": lambda v: v is None or (_whole_number(v) and 0 <= int(v) <= 2**31 - 1),
    "offset": lambda v: v is None or (_number(v) and OFFSET(float(v))),
    "tile": lambda v: _whole_number(v) and PATCH(int(v)),
    "seed": lambda v: _whole_number(v) and SEED(int(v)),
}


@contextlib.contextmanager
def _empty_folder():
    """Run in an empty temporary folder; nothing may be left in it (no work was done)."""
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        yield Path(folder)
        assert not os.listdir(folder), os.listdir(folder)


def _one_line_error(call) -> GeoMedSRError:
    """The GeoMedSRError ``call()`` raises (any other exception fails the test), checked to be one line."""
    with pytest.raises(GeoMedSRError) as info:
        call()
    assert "\n" not in str(info.value), str(info.value)
    return info.value


SHARPEN_KEYWORDS = [
    "inputs",
    "output",
    "pan",
    "guide",
    "bands",
    "method",
    "budget",
    "steps",
    "model",
    "offset",
    "device",
    "amp",
    "tile",
    "overwrite",
    "progress",
    "cog",
    "seed",
    "item",
    "request",
]


@pytest.mark.parametrize("keyword", SHARPEN_KEYWORDS)
@settings(max_examples=40, deadline=None)
@given(value=ANYTHING)
def test_sharpen_answers_any_argument_with_a_one_line_error_before_any_work(keyword, value):
    from geo_med_sr.sharpening.pipeline import sharpen

    kwargs = {"inputs": "missing_S2", "output": "out.tif", "method": "glp", keyword: value}
    inputs, output = kwargs.pop("inputs"), kwargs.pop("output")
    with _empty_folder():
        error = _one_line_error(lambda: sharpen(inputs, output, **kwargs))
    named = f"{keyword}=" in str(error)
    if named:
        assert isinstance(error, ConfigError), error
    if keyword in SHARPEN_NUMBERS:  # a number is refused exactly when it is out of its range
        assert named != SHARPEN_NUMBERS[keyword](value), (keyword, value, str(error))


@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"budget": math.inf}, "budget=inf"),
        ({"budget": "60"}, "budget='60'"),
        ({"steps": -1}, "steps=-1"),
        ({"seed": 10**22}, "seed="),
        ({"offset": 1e308}, "offset="),
        ({"bands": {"B05": 1}}, "bands="),
        ({"tile": 0}, "tile=0"),
    ],
)
def test_sharpen_refuses_bad_values_with_config_errors(kwargs, named):
    from geo_med_sr.sharpening.pipeline import sharpen

    with _empty_folder():
        error = _one_line_error(lambda: sharpen("missing_S2", "out.tif", method="self", **kwargs))
    assert isinstance(error, ConfigError) and named in str(error), str(error)
    with _empty_folder():
        error = _one_line_error(lambda: geo_med_sr.sharpen("missing_S2", 5))  # a number as the output path
    assert isinstance(error, ConfigError) and "output=5" in str(error), str(error)


SUPER_RESOLVE_KEYWORDS = ["src", "dst", "series", "overwrite", "progress", "cog", "target_spacing", "slice_thickness"]


@pytest.mark.parametrize("keyword", SUPER_RESOLVE_KEYWORDS)
@settings(max_examples=40, deadline=None)
@given(value=ANYTHING)
def test_super_resolve_answers_any_argument_with_a_one_line_error_before_any_work(keyword, value):
    from geo_med_sr.upscale.pipeline import super_resolve

    kwargs = {"src": "missing.nii.gz", "dst": "out.nii.gz", "scale": 2, keyword: value}
    if keyword == "target_spacing":
        kwargs["scale"] = None
    src, dst = kwargs.pop("src"), kwargs.pop("dst")
    with _empty_folder():
        error = _one_line_error(lambda: super_resolve(src, dst, **kwargs))
    named = f"{keyword}=" in str(error)
    if keyword in ("target_spacing", "slice_thickness") and value is not None:
        assert named != (_number(value) and MM(float(value))), (keyword, value, str(error))


@pytest.mark.parametrize(
    "config,named",
    [({"model": {"method": "self", "budget": math.inf}}, "model.budget=inf"), ({"model": {"steps": 10**22}}, "steps=")],
)
def test_super_resolve_refuses_a_budget_that_never_ends(config, named):
    with _empty_folder():
        error = _one_line_error(lambda: geo_med_sr.super_resolve("missing.nii.gz", "out.nii.gz", 2, config))
    assert isinstance(error, ConfigError) and named in str(error), str(error)


@pytest.mark.parametrize("name", ["0\n", "a\rb", "tab\there", "bell\x07"])
def test_a_path_with_control_characters_stays_one_line_in_errors(name):
    """Found by the property test above in a fresh-clone run: a path holding a newline split the message."""
    from geo_med_sr.errors import InputError, file_error

    text = str(file_error(InputError, name, "no such file or folder"))
    assert "\n" not in text and "\r" not in text and text.startswith(repr(name))
    with _empty_folder():
        error = _one_line_error(lambda: geo_med_sr.super_resolve(name, "out.nii.gz", 2))
    assert repr(name) in str(error)
