"""Multi-process runs on the CPU: a comparison under DDP (gloo, 2 processes) writes one set of run
files, scores every clip exactly once with the numbers a single process gets from the same
checkpoint, and resumes after being killed; feature stores fill in shards; SLURM's environment
gives the trainer mirformer builds its world size, ranks and requeue signal."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirformer.cli import main
from mirformer.config_tree import parse_overrides
from mirformer.experiments.downstream import Setup, downstream_module
from mirformer.experiments.prepare import prepare
from mirformer.experiments.presets import resolve
from mirformer.kinds import KINDS
from mirformer.representations.store import FeatureStore
from mirformer.training.predict import predict_clips
from mirformer.training.fit import TrainerConfig, load_module_weights, make_trainer
from helpers import TINY_PATCHIFIER, TINY_RUN, FrameStats
from loader_worker import loader_worker

SETUPS = ["spectroformer-pretrained-finetuned", "codebookformer-scratch", "patchifier-frozen-encoder", "mfcc-linear"]
DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]


def _args(out):
    # Global batches that divide over 2 processes; a 2-point grid; 4 fine-tuning epochs to kill one in.
    return ["compare", "--preset", "quickstart", *TINY_RUN, "--set", TINY_PATCHIFIER, "--out", str(out), "--quiet",
            "--set", f"setups=[{', '.join(SETUPS)}]", "--set", "finetune.epochs=4",
            "--set", "finetune.grid={batch_size: [8, 16]}", "--set", "trainer.num_workers=0",
            "--deform", "noise:snr=10"]


def _cli(args, home, **kwargs):
    """``mirformer`` in a process of its own: Lightning starts the other ranks by re-running its command."""
    env = {**os.environ, "MIRFORMER_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "mirformer.cli", *args], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.slow
def test_comparison_under_ddp_on_two_cpu_processes_then_resumed(tmp_path):
    home, out = tmp_path / "home", tmp_path / "run"
    # First launch: killed (both processes) once fine-tuning has written a checkpoint.
    proc = _cli([*_args(out), *DDP], home)
    stage = out / "spectroformer-pretrained-finetuned" / "bs8-lr0.0003"
    deadline = time.monotonic() + 240
    while not (stage / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no fine-tuning checkpoint appeared"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists()
    # Second launch: resumes and finishes.
    proc = _cli([*_args(out), *DDP], home)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    assert (stage / "logs" / "csv-1").exists()  # resumed, not restarted

    results = json.loads((out / "results.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["distributed"]["world_size"] == 2
    assert config["distributed"]["stages"]["finetune"] == {"batch_size": 16, "per_process": 8, "lr": 3e-4}
    assert list(results["setups"]) == SETUPS and log.count("| spectroformer-pretrained-finetuned |") == 1
    # One set of run files: nothing written twice under another name.
    assert sorted(p.name for p in out.glob("*.json")) == ["config.json", "results.json"]
    # The test clips deformed once, the two ranks writing disjoint shares; every setup scored on them.
    copies = list((home / "features").glob("*noise*/audio/*"))
    assert len(copies) == results["counts"]["test"] and all(p.suffix == ".wav" for p in copies)
    assert all(list(s["robustness"]) == ["noise-snr=10"] for s in results["setups"].values())
    assert len(results["evidence"]["robustness"]["losses"]) == len(SETUPS)
    # Resumed with only the baseline's deformed score lost (the baseline fits on rank 0 alone):
    # every rank still follows rank 0's plan, and the score is made again, the same.
    lost = out / "mfcc-linear" / "robustness" / "noise-snr=10" / "result.json"
    before = json.loads(lost.read_text())
    lost.unlink()
    proc = _cli([*_args(out), *DDP], home)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log
    assert json.loads(lost.read_text())["splits"] == before["splits"]

    # A single process scores the selected checkpoints again: the same numbers, every clip once.
    os.environ["MIRFORMER_HOME"] = str(home)  # the same feature stores
    sets = [v for k, v in zip(_args(out), _args(out)[1:]) if k == "--set"]
    # The tokenizer the DDP run trained, given: a single process would otherwise train its own.
    tokenizer = results["representations"]["tokens"]["about"]["checkpoint"]
    cfg = resolve("quickstart", parse_overrides([*sets, f"tokenizer.checkpoint={tokenizer}"]))
    encoders = {kind: out / f"{kind}-pretrain{'-2' if kind == 'patchifier' else ''}" / "encoder.pt"
                for kind in ("spectroformer", "patchifier")}
    prepared = prepare(cfg, encoders=list(encoders.values()), progress=False)
    task = prepared.task
    for name in SETUPS[:-1]:
        result = results["setups"][name]
        with open(out / name / "predictions.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for split in ("train", "validation", "test"):
            ids = [r["track_id"] for r in rows if r["split"] == split]
            assert ids == [t.id for t in prepared.tracks[split]]  # each clip exactly once
        kind = KINDS[result["model"]]
        stage = cfg.scratch if name.endswith("scratch") else cfg.finetune
        if result.get("selected"):
            stage = type(stage)(**{**stage.__dict__, "batch_size": result["selected"]["batch_size"]})
        encoder = None if name.endswith("scratch") else encoders[kind.name]
        setup = Setup(name, kind, stage, encoder, kind.input(cfg).name if encoder is None else str(encoder))
        module = downstream_module(setup, stage, prepared)
        load_module_weights(module, result["checkpoint"])
        inp = prepared.inputs[setup.input]
        outputs = predict_clips(module.model, prepared.tiled("test", inp)).numpy()
        assert task.metrics(outputs, task.targets(prepared.tracks["test"])) == result["splits"]["test"], name
        # Validation during training, split over the ranks, saw each of its windows once as well.
        val = task.metrics(predict_clips(module.model, prepared.epoch_validation(inp)).numpy(),
                           task.targets(prepared.tracks["validation"]))
        best = max(result["history"], key=lambda row: row["val_macro_f1"])
        assert (best["val_macro_f1"], best["val_loss"]) == pytest.approx((val["macro_f1"], val["loss"]), abs=1e-5), name


def test_store_fills_in_shards_and_the_last_shard_consolidates(tmp_path, tracks):
    one = FeatureStore(tmp_path / "one", "toy", FrameStats())
    one.extract(tracks, progress=False)
    sharded = FeatureStore(tmp_path / "sharded", "toy", FrameStats())
    assert sharded.extract(tracks, progress=False, shard=(1, 3)) is None  # shards 0 and 2 still missing
    assert sharded.extract(tracks, progress=False, shard=(0, 3)) is None
    assert not (sharded.dir / "features.npy").exists()
    assert sharded.extract(tracks, progress=False, shard=(2, 3)) == {"bad": "empty file (0 bytes)"}
    for t in tracks[:4]:
        assert (sharded.get(t.id) == one.get(t.id)).all() and sharded.seconds(t.id) == one.seconds(t.id)
    assert not (sharded.dir / "parts").exists()


def test_extract_store_command_with_shards(tmp_path, capsys, tiny_corpus):
    args = ["extract", "store", "--preset", "quickstart", *TINY_RUN, "--quiet", "--set", "setups=[spectroformer-scratch]"]
    assert main([*args, "--shard", "1/2"]) == 0
    assert "waiting for the other shards' parts" in capsys.readouterr().out
    assert main([*args, "--shard", "0/2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mel: ") and out.rstrip().endswith(": complete")
    index = json.loads((Path(out.split(": ")[1]) / "index.json").read_text())
    assert len(index["tracks"]) + len(index["failed"]) == 24  # 3 classes x 4 scores x 2 clips


def test_slurm_environment_sets_world_ranks_and_requeue(tmp_path, monkeypatch):
    from lightning.pytorch.plugins.environments import SLURMEnvironment
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)  # the trainer sets it to 5; put it back after

    # Task 5 of a 2-node job with 4 tasks per node: node 1, local rank 1.
    for key, value in {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2", "SLURM_PROCID": "5",
                       "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "mirformer",
                       "SLURM_NODELIST": "node[001-002]"}.items():
        monkeypatch.setenv(key, value)
    trainer, *_ = make_trainer(TrainerConfig(accelerator="cpu", devices=4, num_nodes=2, strategy="ddp"),
                                 stage_dir=tmp_path, epochs=1, monitor="val/loss", mode="min")
    assert (trainer.world_size, trainer.global_rank, trainer.local_rank, trainer.node_rank) == (8, 5, 1, 1)
    env = trainer._accelerator_connector.cluster_environment
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue and env.requeue_signal == signal.SIGUSR1
    assert env.main_address == "node001"


@pytest.mark.slow
def test_loaders_split_evaluation_exactly_and_training_evenly():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(loader_worker, args=(port, queue), nprocs=2, start_method="spawn")
    got = dict((rank, (train, evaluation)) for rank, train, evaluation in (queue.get() for _ in range(2)))
    # Evaluation: every item exactly once over the two ranks, none repeated to even them out.
    assert sorted(got[0][1] + got[1][1]) == list(range(7))
    # Training: the same number of items (and steps) on each rank, every item seen, batches of 4 / 2.
    assert len(got[0][0]) == len(got[1][0]) == 4 and set(got[0][0] + got[1][0]) == set(range(7))
