"""Robustness: every trained setup scored again on deformed copies of the test clips.

For each setting of ``cfg.deform`` (``mirformer.deformations``: noise, MP3, pitch, ...) the test
clips are deformed once (``experiments.deformed_audio``), each input's features of them stored
like any dataset's, and every setup's selected model (the checkpoint it was scored with) reads
them with the clean run's statistics; a kind that fits itself is fitted again on the same
training data, which gives the same model, and scores the deformed clips beside its clean ones.
Nothing is retrained. Each (setup, setting) writes ``<setup>/robustness/<setting>/`` with its
``outputs.npz`` and ``result.json``: a rerun reuses them, and adding a setting scores only it.
How much each setup loses, with intervals and paired tests, is ``questions.robustness_evidence``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from mirformer import distributed, paths
from mirformer.atomic import write_json
from mirformer.audio import too_short
from mirformer.deformations import FAMILIES, Deformation, parse_deforms
from mirformer.errors import MirformerError
from mirformer.experiments.deformed_audio import DeformedClips, deform_test
from mirformer.experiments.downstream import Setup, device_of, downstream_module
from mirformer.experiments.outputs import OUTPUTS, load_outputs, save_outputs
from mirformer.experiments.prepare import Input, Prepared
from mirformer.experiments.run import log
from mirformer.representations.store import FeatureStore
from mirformer.training.fit import load_module_weights
from mirformer.training.predict import predict_clips


def describe(d: Deformation) -> dict:
    """A setting as ``results.json`` lists it."""
    family = FAMILIES[d.family]
    return {"name": d.name, "label": d.label, "family": d.family, "param": family.param, "unit": family.unit,
            "value": d.value, "strength": d.strength, "key": d.key}


def score_robustness(setups: list[Setup], results: dict[str, dict], prepared: Prepared, run_dir: Path) -> None:
    """Score every setup in ``results`` on every setting of ``prepared.cfg.deform`` (finished ones
    reused) and add ``results[name]["robustness"] = {setting: entry}`` on rank 0."""
    cfg = prepared.cfg
    deformations = parse_deforms(cfg.deform)
    if not deformations:
        return
    run_dir = Path(run_dir)
    scored = []
    for s in setups:
        if s.name in results and s.kind.neural and not prepared.inputs[s.input].representation.frames_from_samples:
            results[s.name]["robustness_skipped"] = "it reads precomputed features, which deformed audio cannot change"
            log(f"{s.name}: not scored on deformed clips ({results[s.name]['robustness_skipped']})", prepared.progress)
        elif s.name in results:
            scored.append(s)
    todo = {s.name: [d for d in deformations if not _done(run_dir, s.name, d).exists()] for s in scored}
    # Under DDP every rank deforms and extracts its share of what rank 0 finds left: rank 0 alone
    # holds the setups that fit themselves, and it alone writes scores.
    plan = distributed.broadcast({d.name: sorted({s.input for s in scored if d in todo[s.name] and s.kind.neural})
                                  for d in deformations if any(d in todo[s.name] for s in scored)})
    for d in deformations:
        if d.name not in plan:
            continue
        clips = deform_test(prepared.dataset.identity, prepared.tracks["test"], d, seed=cfg.seed,
                            workers=cfg.workers, progress=prepared.progress)
        inputs = _deformed_inputs(prepared, clips, plan[d.name])
        if not distributed.is_main():
            continue
        for setup in [s for s in scored if d in todo[s.name]]:
            log(f"{setup.name}: scoring on {d.label}", prepared.progress)
            if setup.kind.neural:
                _score_model(setup, results[setup.name], prepared, inputs[setup.input], clips, run_dir)
            else:
                _score_fitted(setup, results[setup.name], prepared, clips, run_dir)
    if distributed.is_main():
        for name in todo:
            done = {d.name: _done(run_dir, name, d) for d in deformations}
            results[name]["robustness"] = {k: json.loads(p.read_text()) for k, p in done.items() if p.exists()}


def _done(run_dir: Path, setup: str, d: Deformation) -> Path:
    return run_dir / setup / "robustness" / d.name / "result.json"


def _deformed_inputs(prepared: Prepared, clips: DeformedClips, names: list[str]) -> dict[str, Input]:
    """The inputs ``names`` on the deformed clips: their own stores (keyed by the deformed copy's
    identity), the clean inputs' windows and statistics. A clip whose features fail, or that the
    deformation made too short, is dropped from ``clips`` for every input."""
    cfg, inputs = prepared.cfg, {}
    for name in names:
        clean = prepared.inputs[name]
        store = FeatureStore(paths.features_dir(), clips.identity, clean.representation)
        log(f"{name} features of {clips.deformation.label}: {store.dir}", prepared.progress)
        store.extract(clips.tracks, workers=cfg.workers, progress=prepared.progress, shard=distributed.shard_spec())
        distributed.barrier()
        store.reload()
        failed = store.failures(clips.tracks)
        for t in clips.tracks:
            why = failed.get(t.id) or too_short(store.seconds(t.id), cfg.data.min_seconds)
            if why:
                clips.skipped[t.id] = why
        inputs[name] = replace(clean, store=store)
    clips.tracks = [t for t in clips.tracks if t.id not in clips.skipped]
    return inputs


def _write(folder: Path, run_dir: Path, d: Deformation, clips: DeformedClips, outputs, task) -> None:
    ids, targets = [t.id for t in clips.tracks], task.targets(clips.tracks)
    save_outputs(folder / OUTPUTS, {"test": (ids, targets, outputs)})
    write_json(folder / "result.json", {**describe(d), "splits": {"test": task.metrics(outputs, targets)},
                                        "outputs": str((folder / OUTPUTS).relative_to(run_dir)),
                                        "n": len(ids), "skipped": clips.skipped})


def _score_model(setup: Setup, result: dict, prepared: Prepared, inp: Input, clips: DeformedClips,
                 run_dir: Path) -> None:
    """The checkpoint the setup was scored with, on the deformed clips' windows."""
    cfg = prepared.cfg
    module = downstream_module(setup, setup.stage, prepared)
    load_module_weights(module, Path(result["checkpoint"]))
    view = replace(prepared, tracks={"test": clips.tracks})
    outputs = predict_clips(module.model, view.tiled("test", inp), batch_size=cfg.eval_batch_size,
                            precision=cfg.trainer.precision, device=device_of(cfg)).float().numpy()
    _write(_done(run_dir, setup.name, clips.deformation).parent, run_dir, clips.deformation, clips, outputs,
           prepared.task)


def _score_fitted(setup: Setup, clean: dict, prepared: Prepared, clips: DeformedClips, run_dir: Path) -> None:
    """A kind that fits itself, fitted again as before (same data and seed: the same model, which
    its clean test outputs must show), also scoring the deformed clips."""
    cfg = prepared.cfg
    tracks = [t for ts in prepared.tracks.values() for t in ts]
    result, outputs = setup.kind.fit(tracks, prepared.task, setup.kind.settings(cfg), seed=cfg.seed,
                                     workers=cfg.workers, progress=prepared.progress,
                                     also={"deformed": clips.tracks})
    _, _, before = load_outputs(run_dir / clean["outputs"])
    if not np.allclose(outputs["test"][2], before, rtol=1e-4, atol=1e-5):
        raise MirformerError(f"{setup.name}: fitted again on the same data it scores the clean test clips "
                             "differently, so its deformed scores would not be the same model's")
    ids, _, out = outputs["deformed"]
    clips = replace(clips, skipped={**clips.skipped, **result["also"]["deformed"]["skipped"]})
    kept = set(ids)
    clips.tracks = [t for t in clips.tracks if t.id in kept]
    _write(_done(run_dir, setup.name, clips.deformation).parent, run_dir, clips.deformation, clips, out,
           prepared.task)
