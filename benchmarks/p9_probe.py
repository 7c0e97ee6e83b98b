"""P9 probe: what probing an input costs over the torture corpus (tests/corpus.py), and what maintained
parsers make of the same files.

Part A, the probe's cost: each corpus file served by tests.corpus.MediaServer (httpx's mock transport),
which honours Range and streams its body in 16 KiB pieces, so the bytes counted are the ones the probe
pulled; requests, bytes, milliseconds (the median of 5 probes, each of a fresh server) and the verdict,
for the probe now and as it was before the corpus (e42f471, loaded from git). Clips and audio are read by
their headers, so a probe that is right more often must not cost more requests for the files it accepts;
images within the limits are read whole on purpose, so their bytes are shown beside what reading the
header alone cost.

Part B, as the issue asks: pymediainfo, mutagen, hachoir and PyAV (ffprobe's libraries), installed into
a venv of their own (.venv-probe-libs, made on first use; I2V_BENCH_P9_LIBRARIES=0 skips the part), each
reading the corpus from local files named with spaces and accents; our limits (i2v.models.MEDIA_LIMITS) are
held to what each says. Beside that, a cold import (the median of 5 fresh interpreters, less a bare one)
and the installed size, the probe's own next to them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from benchmarks.report import Goal, line, note, section

if TYPE_CHECKING:
    from i2v.models import Kind
    from tests.corpus import Case, MediaServer

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "e42f471"  # the probe before the torture corpus ("today's")
PROBE_PATH = "layers/common/i2v/probe.py"  # at BEFORE; now a module or a package, found by import
RUNS = 5
LIBS_VENV = ROOT / ".venv-probe-libs"
LIBRARIES = ("pymediainfo", "mutagen", "hachoir", "av")
# What each library's worker imports to read a file, timed cold; pymediainfo's can_parse() loads the
# bundled libmediainfo, as its first parse would.
IMPORTS = {
    "pymediainfo": "from pymediainfo import MediaInfo; MediaInfo.can_parse()",
    "mutagen": "import mutagen, mutagen.mp3, mutagen.mp4, mutagen.wave",
    "hachoir": "from hachoir.parser import createParser; from hachoir.metadata import extractMetadata",
    "av": "import av",
}
OURS = "import i2v.probe"
KINDS = ("image", "video", "audio")
NAME = 44  # characters of a file's name in the tables


# ---------------------------------------------------------------------------------------------------------
# Part A: the probe over HTTP Range


@dataclass(frozen=True)
class Probed:
    requests: int
    read: int  # bytes
    ms: float  # the median of RUNS
    problems: tuple[str, ...]  # the refusal (ProbeError's message, or the limits broken); empty: accepted


def probe_file(module: types.ModuleType, data: bytes, kind: str) -> Probed:
    from tests.corpus import URL, MediaServer  # the corpus's own Range server, as the unit tests use

    took: list[float] = []
    first: tuple[MediaServer, tuple[str, ...]] | None = None
    for _ in range(RUNS):
        server = MediaServer(data)
        with httpx.Client(transport=httpx.MockTransport(server)) as client:
            start = time.perf_counter()
            try:
                problems = tuple(module.limit_violations(module.probe(client, URL, kind)))
            except module.ProbeError as exc:
                problems = (str(exc),)
            except Exception as exc:  # a bug: the API would answer 500
                problems = (f"CRASH {type(exc).__name__}: {exc}",)
            took.append(time.perf_counter() - start)
        first = first or (server, problems)
    assert first is not None
    server, problems = first
    return Probed(server.requests, server.sent, statistics.median(took) * 1000, problems)


def probe_before() -> tuple[types.ModuleType | None, str]:
    """The probe as it was at BEFORE, loaded from git into a module of its own (i2v importable)."""
    try:
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE}:{PROBE_PATH}"],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        why = getattr(exc, "stderr", "") or str(exc)
        return None, f"git cannot show {BEFORE}:{PROBE_PATH} ({why.strip()})"
    module = types.ModuleType(f"i2v_probe_{BEFORE}")
    module.__file__ = f"{BEFORE}:{PROBE_PATH}"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        exec(compile(shown.stdout, module.__file__, "exec"), module.__dict__)  # noqa: S102 (our own history)
    except Exception as exc:
        del sys.modules[module.__name__]
        return None, f"{BEFORE}'s probe.py does not load against today's i2v ({type(exc).__name__}: {exc})"
    return module, ""


def judged(problems: tuple[str, ...], refused: str | None) -> str:
    """'ok' (the expected verdict; refused with the expected message), 'ok~' (refused, for another
    reason than the corpus expects), 'WRONG'."""
    if refused is None:
        return "ok" if not problems else "WRONG"
    if not problems or problems[0].startswith("CRASH"):
        return "WRONG"
    return "ok" if any(refused in problem for problem in problems) else "ok~"


def verdict(problems: tuple[str, ...]) -> str:
    if problems and problems[0].startswith("CRASH"):
        return "crashed"
    return "refused" if problems else "accepted"


def cell(probed: Probed, mark: str) -> str:
    figures = f"{probed.requests:>4} {probed.read / 1000:>9.1f} {probed.ms:>7.2f}"
    return f"{figures} {verdict(probed.problems):<8} {mark:<5}"


def part_a(corpus: list[Case]) -> dict[str, str]:
    """The probe now and before over the corpus; returns each file's mark for the current probe."""
    from i2v import probe as now_module

    before_module, why = probe_before()
    section(f"P9 probe, part A: the corpus over an in-process Range server (median of {RUNS}; kB = 1000 B)")
    if before_module is None:
        note(f"{why}: only the current probe's figures")
    head = f"{'req':>4} {'kB read':>9} {'ms':>7} {'verdict':<8} {'':<5}"
    note(f"{'file':<{NAME}} {'kind':<5} | now:  {head}" + (f" | before: {head}" if before_module else ""))
    now: dict[str, Probed] = {}
    before: dict[str, Probed] = {}
    marks: dict[str, str] = {}
    differs: list[str] = []
    for case in corpus:
        data = case.data
        now[case.name] = probed = probe_file(now_module, data, case.kind)
        marks[case.name] = judged(probed.problems, case.refused)
        row = f"{case.name[:NAME]:<{NAME}} {case.kind:<5} | now:  {cell(probed, marks[case.name])}"
        if before_module is not None:
            before[case.name] = old = probe_file(before_module, data, case.kind)
            row += f" | before: {cell(old, judged(old.problems, case.refused))}"
        note(row)
        if marks[case.name] != "ok":
            differs.append(f"now, {case.name!r}: {'; '.join(probed.problems) or 'accepted'}")
    for case in corpus:
        if case.name in before and judged(before[case.name].problems, case.refused) != "ok":
            differs.append(f"before, {case.name!r}: {'; '.join(before[case.name].problems) or 'accepted'}")
    note("(ok: the expected verdict and message; ok~: refused, but for another reason; WRONG: not the")
    note(" verdict the corpus expects; req and kB are the first run's, all runs alike)")
    for text in differs:
        note(text[:300])

    total = len(corpus)
    right_now = sum(mark != "WRONG" for mark in marks.values())
    line(f"files right now (of {total})", right_now, "files", ratio=right_now / total)
    if before_module is None:
        return marks
    right_before = sum(judged(before[c.name].problems, c.refused) != "WRONG" for c in corpus)
    line(f"files right before, at {BEFORE} (of {total})", right_before, "files", ratio=right_before / total)
    exact_now = sum(mark == "ok" for mark in marks.values())
    exact_before = sum(judged(before[c.name].problems, c.refused) == "ok" for c in corpus)
    note(f"with the corpus's own message: {exact_now} now, {exact_before} before")

    headers = [c.name for c in corpus if c.refused is None and c.kind != "image"]
    if headers:
        req_now, req_before = (sum(side[n].requests for n in headers) for side in (now, before))
        line(
            f"requests, {len(headers)} accepted clips and audio: now",
            req_now,
            "req",
            ratio=req_now / max(req_before, 1),
            goal=Goal(at_most=1),
        )
        read_now, read_before = (sum(side[n].read for n in headers) for side in (now, before))
        line("  their bytes read: now", read_now / 1000, "kB", ratio=read_now / max(read_before, 1))
        ms_now, ms_before = (sum(side[n].ms for n in headers) for side in (now, before))
        line("  their milliseconds: now", ms_now, "ms", ratio=ms_now / max(ms_before, 1e-9))
        more = [n for n in headers if now[n].requests > before[n].requests]
        note(f"(ratios: now / before; more requests now: {', '.join(more) if more else 'no file'})")
    images = [c.name for c in corpus if c.kind == "image"]
    if images:
        read_now, read_before = (sum(side[n].read for n in images) for side in (now, before))
        ratio = read_now / max(read_before, 1)
        line(f"bytes read, {len(images)} images: now", read_now / 1000, "kB", ratio=ratio)
        req_now, req_before = (sum(side[n].requests for n in images) for side in (now, before))
        line("  their requests: now", req_now, "req", ratio=req_now / max(req_before, 1))
        ms_now, ms_before = (sum(side[n].ms for n in images) for side in (now, before))
        line("  their milliseconds: now", ms_now, "ms", ratio=ms_now / max(ms_before, 1e-9))
        note("(images within the limits are now read whole, in one request, on purpose: a decode to the end)")
    return marks


# ---------------------------------------------------------------------------------------------------------
# Part B: maintained parsers, from local files, in a venv of their own

# Run by the libraries' venv: `python -c WORKER read LIBRARY MANIFEST` prints, for each file of the manifest
# (a JSON list of [path, kind]), what the library says: width, height, duration (s) or an error;
# `python -c WORKER size NAME...` prints each distribution's installed bytes, its own and its dependencies'.
WORKER = r"""
import json, re, sys, time, warnings
warnings.simplefilter("ignore")


def number(value, scale=1.0):
    if value in (None, ""):
        return None
    try:
        return float(str(value).split(" / ")[0]) / scale
    except ValueError:
        return None


def read_pymediainfo(path, kind):
    from pymediainfo import MediaInfo
    wanted = {"image": "Image", "video": "Video", "audio": "Audio"}[kind]
    tracks = MediaInfo.parse(path).tracks
    general = next((t for t in tracks if t.track_type == "General"), None)
    track = next((t for t in tracks if t.track_type == wanted), None)
    if track is None:
        return {"error": "no %s track (General: %s)" % (wanted, getattr(general, "format", None))}
    duration = track.duration if track.duration is not None else getattr(general, "duration", None)
    return {
        "format": getattr(general, "format", None),
        "width": number(track.width),
        "height": number(track.height),
        "duration": number(duration, 1000.0),
    }


def read_mutagen(path, kind):
    import mutagen
    found = mutagen.File(path)
    if found is None:
        return {"error": "not a format mutagen reads"}
    return {"format": type(found).__name__, "duration": number(getattr(found.info, "length", None))}


def read_hachoir(path, kind):
    from hachoir.core import config
    config.quiet = True
    from hachoir.metadata import extractMetadata
    from hachoir.parser import createParser
    parser = createParser(path)
    if parser is None:
        return {"error": "not a format hachoir parses"}
    with parser:
        metadata = extractMetadata(parser)
        if metadata is None:
            return {"error": "hachoir extracts no metadata (%s)" % type(parser).__name__}
        said = {}
        # A clip's picture size sits in a group (its video track); iterGroups() breaks in 3.4, hence the name.
        inner = getattr(metadata, "_MultipleMetadata__groups", {})
        groups = [metadata, *(group for _, group in inner.items())]
        for group in groups:
            for key in ("width", "height", "duration"):
                if key not in said and group.has(key):
                    said[key] = group.get(key)
    duration = said.get("duration")
    return {
        "format": type(parser).__name__,
        "width": number(said.get("width")),
        "height": number(said.get("height")),
        "duration": duration.total_seconds() if duration is not None else None,
    }


def read_av(path, kind):
    import av
    with av.open(path) as container:
        streams = container.streams.audio if kind == "audio" else container.streams.video
        if not streams:
            wanted = "audio" if kind == "audio" else "video"
            return {"error": "no %s stream (%s)" % (wanted, container.format.name)}
        stream = streams[0]
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = container.duration / 1e6 if container.duration is not None else None
        context = stream.codec_context
        return {
            "format": container.format.name,
            "width": getattr(context, "width", None) or None,
            "height": getattr(context, "height", None) or None,
            "duration": duration,
        }


def size(names):
    from importlib import metadata
    out = {}
    for root in names:
        seen, todo, total, versions = set(), [root], 0, {}
        while todo:
            name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
            if name in seen:
                continue
            seen.add(name)
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            versions[name] = dist.version
            counted = set()
            for file in dist.files or []:
                path = dist.locate_file(file)
                if path.is_file():
                    counted.add(str(path.resolve()))
                    total += path.stat().st_size
            if name == "pymediainfo":  # its bundled libmediainfo, were it not in the RECORD
                package = dist.locate_file("pymediainfo")
                for path in package.glob("libmediainfo*") if package.is_dir() else []:
                    if str(path.resolve()) not in counted:
                        total += path.stat().st_size
                bundled = [p.name for p in package.glob("libmediainfo*")] if package.is_dir() else []
                versions["bundled"] = ", ".join(bundled) or "none: the system's libmediainfo"
            for requirement in dist.requires or []:
                if "extra ==" not in requirement:
                    todo.append(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
        out[root] = {"bytes": total, "versions": versions}
    return out


if sys.argv[1] == "size":
    print(json.dumps(size(sys.argv[2:])))
else:
    library, manifest = sys.argv[2], sys.argv[3]
    reader = globals()["read_" + library]
    answers = []
    with open(manifest, encoding="utf-8") as handle:
        files = json.load(handle)
    for path, kind in files:
        start = time.perf_counter()
        try:
            said = reader(path, kind)
        except Exception as exc:
            said = {"error": ("%s: %s" % (type(exc).__name__, exc))[:200]}
        said["ms"] = (time.perf_counter() - start) * 1000
        answers.append(said)
    print(json.dumps(answers))
"""


def libraries_python() -> Path:
    """The libraries venv's interpreter, made (or completed) first unless it holds LIBRARIES."""
    python, stamp = LIBS_VENV / "bin" / "python", LIBS_VENV / ".installed-stamp"
    wanted = "\n".join(LIBRARIES)
    if not stamp.exists() or stamp.read_text() != wanted:
        note(f"installing {', '.join(LIBRARIES)} into {LIBS_VENV.name}/ (once) ...")
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(LIBS_VENV)], check=True, capture_output=True, text=True
            )
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # Wheels only: nothing is compiled here (two cores, shared with other benchmarks).
        subprocess.run([*pip, "--only-binary=:all:", *LIBRARIES], check=True, capture_output=True, text=True)
        stamp.write_text(wanted)  # only once pip succeeded: a broken install is tried again
    return python


def extension(data: bytes, kind: str) -> str:
    if data[:2] == b"\xff\xd8":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] == b"RIFF":
        return {b"WEBP": "webp", b"WAVE": "wav"}.get(data[8:12], "riff")
    if kind == "video":
        return "mov" if data[8:12] == b"qt  " else "mp4"
    return "mp3" if kind == "audio" else "bin"


def library_problems(said: dict[str, Any], kind: Kind, size: int) -> tuple[list[str], bool]:
    """Our limits held to what a library says; and whether it refuses only for what it could not say (an
    error, no size, no duration: an MP4's duration of 0 is 'unknown' too)."""
    from i2v.models import MB, MEDIA_LIMITS

    if said.get("error"):
        return [str(said["error"])], True
    limits = MEDIA_LIMITS[kind]
    unknown: list[str] = []
    broken: list[str] = []
    if limits.sides is not None:
        low, high = limits.sides
        width, height = said.get("width"), said.get("height")
        if not width or not height:
            unknown.append("no size")
        else:
            if not (low <= width <= high and low <= height <= high):
                broken.append(f"{width:.0f}x{height:.0f} px")
            if max(width, height) > min(width, height) * limits.max_aspect:
                broken.append(f"aspect {max(width, height) / min(width, height):.1f}:1")
    if limits.seconds is not None:
        low, high = limits.seconds
        duration = said.get("duration")
        if not duration:
            unknown.append("no duration")
        elif not low <= duration <= high:
            broken.append(f"{duration:.1f} s")
    if size > limits.max_bytes:
        broken.append(f"{size / MB:.1f} MB")
    return [*broken, *unknown], not broken and bool(unknown)


def said_text(said: dict[str, Any]) -> str:
    if said.get("error"):
        return f"error {said['error']}"
    parts = [str(said.get("format"))]
    if said.get("width") or said.get("height"):
        parts.append(f"{said.get('width') or 0:.0f}x{said.get('height') or 0:.0f} px")
    if said.get("duration") is not None:
        parts.append(f"{said['duration']:.2f} s")
    return ", ".join(parts)


def probe_sources() -> tuple[list[Path], list[str]]:
    """The probe's source files (one module, or a package's), and its submodules (each kind's reader)."""
    spec = importlib.util.find_spec("i2v.probe")
    if spec is None or spec.origin is None:
        return [], []
    if not spec.submodule_search_locations:
        return [Path(spec.origin)], []
    files = sorted(path for folder in spec.submodule_search_locations for path in Path(folder).glob("*.py"))
    modules = [f"i2v.probe.{path.stem}" for path in files if path.stem != "__init__"]
    return files, modules


def median_wall(python: str, code: str, env: dict[str, str]) -> float:
    """The median seconds of RUNS fresh `python -c code`, after one run that writes any bytecode."""
    subprocess.run([python, "-c", code], check=True, capture_output=True, env=env)
    took = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, capture_output=True, env=env)
        took.append(time.perf_counter() - start)
    return statistics.median(took)


def part_b(corpus: list[Case], our_marks: dict[str, str]) -> None:
    section("P9 probe, part B: maintained parsers on the corpus, from local files")
    if os.environ.get("I2V_BENCH_P9_LIBRARIES", "1") == "0":
        note("skipped (I2V_BENCH_P9_LIBRARIES=0)")
        return
    try:
        python = str(libraries_python())
    except (OSError, subprocess.CalledProcessError) as exc:
        why = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()
        last = why[-1] if why else str(exc)
        note(f"the libraries' venv {LIBS_VENV.name}/ could not be made, part B skipped: {last}")
        return
    libs_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    total = len(corpus)
    said: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="p9 probe ") as tmp:
        files = []
        for index, case in enumerate(corpus, 1):
            title = re.sub(r"[/\\:]", "-", case.name)
            path = Path(tmp) / f"Été n° {index} \N{EN DASH} {title}.{extension(case.data, case.kind)}"
            path.write_bytes(case.data)
            files.append([str(path), case.kind])
        manifest = Path(tmp) / "manifest.json"
        manifest.write_text(json.dumps(files), encoding="utf-8")
        for library in LIBRARIES:
            try:
                done = subprocess.run(
                    [python, "-c", WORKER, "read", library, str(manifest)],
                    capture_output=True,
                    text=True,
                    env=libs_env,
                    timeout=600,
                )
            except subprocess.TimeoutExpired:
                note(f"{library}: its worker took over 600 s; left out")
                continue
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                note(f"{library}: its worker failed ({tail}); left out")
                continue
            said[library] = json.loads(done.stdout)
    note("(each library reads a local file as a whole: over HTTP the whole file must be fetched first, up to")
    note(" 100 MB for a clip, where the probe reads the headers by Range; that fetch is a cost of its own,")
    note(" not counted here. A refusal is right when the corpus expects one, whatever its reason: 'ok:?' is")
    note(" right only because the library errored or could not say a size or duration)")

    libraries = list(said)
    head = " ".join(f"{name:<11}" for name in ["probe now", *libraries])
    note(f"{'file':<{NAME}} {'expected':<8} | {head}")
    marks: dict[str, list[str]] = {library: [] for library in libraries}
    wrong: list[str] = []
    for index, case in enumerate(corpus):
        row = [our_marks.get(case.name, "-")]
        for library in libraries:
            answer = said[library][index]
            problems, only_unknown = library_problems(answer, case.kind, len(case.data))
            if (case.refused is None) != (not problems):
                mark = "WRONG"
                outcome = f"refused ({'; '.join(problems)})" if problems else "accepted"
                wrong.append(f"{library}, {case.name!r}: {outcome}; it said {said_text(answer)}")
            else:
                mark = "ok:?" if problems and only_unknown else "ok"
            marks[library].append(mark)
            row.append(mark)
        expected = "refuse" if case.refused is not None else "accept"
        note(f"{case.name[:NAME]:<{NAME}} {expected:<8} | " + " ".join(f"{m:<11}" for m in row))
    for text in wrong:
        note(text[:300])

    sizes: dict[str, Any] = {}
    done = subprocess.run(
        [python, "-c", WORKER, "size", *libraries], capture_output=True, text=True, env=libs_env, check=False
    )
    if done.returncode == 0:
        sizes = json.loads(done.stdout)

    ours_env = {**libs_env, "PYTHONPATH": str(ROOT / "layers" / "common")}
    sources, modules = probe_sources()
    everything = ", ".join([*modules, "PIL.Image"])
    ours_floor = median_wall(sys.executable, "pass", ours_env)
    ours_ms = (median_wall(sys.executable, OURS, ours_env) - ours_floor) * 1000
    all_ms = (median_wall(sys.executable, f"{OURS}; import {everything}", ours_env) - ours_floor) * 1000
    stack = (median_wall(sys.executable, "import i2v.media, i2v.models", ours_env) - ours_floor) * 1000
    ours_right = sum(mark != "WRONG" for mark in our_marks.values())
    line(f"i2v.probe: files right (of {total})", ours_right, "files", ratio=ours_right / total)
    line("i2v.probe: cold import (import i2v.probe)", ours_ms, "ms")
    line("i2v.probe: size (its source's bytes)", sum(p.stat().st_size for p in sources) / 2**20, "MB")
    note(
        f"(of that import, {stack:.0f} ms is i2v.media and i2v.models with httpx, pydantic and powertools,"
        f" which the API imports anyway; with what a first probe of each kind imports ({everything}):"
        f" {all_ms:.0f} ms; source: {', '.join(p.name for p in sources)})"
    )
    floor = median_wall(python, "pass", libs_env)
    for library in libraries:
        right = sum(mark != "WRONG" for mark in marks[library])
        line(f"{library}: files right (of {total})", right, "files", ratio=right / total)
        try:
            ms = (median_wall(python, IMPORTS[library], libs_env) - floor) * 1000
        except subprocess.CalledProcessError:
            note(f"{library}: {IMPORTS[library]!r} fails")
        else:
            line(f"{library}: cold import", ms, "ms", ratio=ms / ours_ms if ours_ms > 0 else None)
        if library in sizes:
            line(f"{library}: installed size", sizes[library]["bytes"] / 2**20, "MB")
        pairs = list(zip(marks[library], corpus, strict=True))
        right_by_kind = {kind: sum(m != "WRONG" for m, c in pairs if c.kind == kind) for kind in KINDS}
        of_kind = {kind: sum(c.kind == kind for c in corpus) for kind in KINDS}
        by_kind = ", ".join(f"{kind} {right_by_kind[kind]}/{of_kind[kind]}" for kind in KINDS)
        unsure = sum(mark == "ok:?" for mark in marks[library])
        versions = ", ".join(f"{k} {v}" for k, v in sizes.get(library, {}).get("versions", {}).items())
        read_ms = sum(answer["ms"] for answer in said[library])
        note(
            f"({by_kind} right; {unsure} of them only as it could not say; the corpus read in {read_ms:.0f}"
            f" ms; {versions})"
        )
    note(f"(cold import: the median of {RUNS} fresh interpreters less a bare `python -c pass`, each in its")
    note(" own venv; ratio: to `import i2v.probe`. MB = 2**20 bytes, with bytecode as pip installed it)")
    for library in libraries:
        note(f"{library}: {IMPORTS[library]}")


def run() -> None:
    from tests.corpus import CORPUS

    corpus = list(CORPUS)
    marks = part_a(corpus)
    part_b(corpus, marks)
