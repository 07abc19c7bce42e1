"""The ``mirformer`` command. Thin: each sub-command parses arguments and calls one function.

Preset, strategy, kind and representation names come from their registries.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from mirformer.audio import MIN_SECONDS
from mirformer.errors import ConfigError, MirformerError

TRAINER_FLAGS = ("accelerator", "devices", "num_nodes", "strategy", "precision", "compile")


def _seeds(text: str) -> list[int]:
    try:
        return [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def _fractions(text: str) -> list[float]:
    """``"0.1,0.3,1.0"`` -> increasing shares in (0, 1]."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"fractions must be comma-separated numbers, got {text!r}") from None
    if not all(0 < v <= 1 for v in values) or values != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"fractions must increase within (0, 1], got {text!r}")
    return values


def _shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes K/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 0 <= K < N, got {text!r}")
    return k, n


def _tokenizer_args(p: argparse.ArgumentParser) -> None:
    """The tokenizer options of the commands that read one: its path, level and codebooks."""
    p.add_argument("--tokenizer", "--vqvae", required=True, dest="tokenizer", metavar="PATH",
                   help="a VQ-VAE checkpoint (OpenAI's vqvae.pth.tar or mirformer's) or a neural codec's folder "
                        "(EnCodec, DAC, Mimi or X-Codec: config.json + model.safetensors, as save_pretrained "
                        "writes them)")
    p.add_argument("--level", type=int, help="a VQ-VAE's level (default: the top one; Jukebox: 2, hop 128)")
    p.add_argument("--codebooks", type=int, metavar="N", help="read the first N codebooks (default: all it has)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="load a checkpoint that needs full unpickling (only for files you trust)")


def _run_args(p: argparse.ArgumentParser, *, preset: str, out: str | None, trainer: bool = True) -> None:
    """The arguments of every command that resolves a comparison config."""
    from mirformer.experiments.presets import PRESETS

    p.add_argument("--preset", default="quickstart", choices=list(PRESETS), metavar="PRESET",
                   help=f"{preset}: {', '.join(PRESETS)} (default quickstart)")
    p.add_argument("--data-root", help="the dataset's folder as you unpacked it (sets data.root)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. finetune.epochs=5")
    if out:
        p.add_argument("--out", help=out)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    if trainer:
        g = p.add_argument_group("Lightning trainer (passed through)")
        g.add_argument("--accelerator", help="cpu, gpu, auto, ...")
        g.add_argument("--devices", help="number of devices or 'auto'")
        g.add_argument("--num-nodes", type=int, help="nodes for multi-node DDP (SLURM sets the rest)")
        g.add_argument("--strategy", help="auto, ddp, ...")
        g.add_argument("--precision", help="32-true, bf16-mixed (CPU/GPU), 16-mixed (GPU, loss scaling)")
        g.add_argument("--compile", metavar="BACKEND", help="torch.compile the network for training: inductor (GPU)")


def _deform_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--deform", action="append", metavar="SPEC",
                   help="also score every setup on deformed test clips (repeat): noise:snr=20,10, gain:db=-20, "
                        "mp3:kbps=64,32, pitch:semitones=-1,1, stretch:rate=0.9,1.1, lowpass:hz=4000, clip:db=-6, "
                        "reverb:room=0.5 (replaces the preset's deform list; --set deform=[] scores clean clips only)")


def _fraction_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pretrain-fractions", type=_fractions, metavar="F,F,...",
                   help="pretrain on nested shares of the pretraining set's training split (e.g. 0.1,0.3,1.0), "
                        "each pretrained setup once per share (a sweep of pretrain.fraction)")


def _config(args):
    """The preset, then ``--set`` values, ``--data-root``, the trainer flags and ``--quiet``."""
    from mirformer.experiments.presets import resolve

    return resolve(args.preset, _overrides(args))


def _overrides(args) -> dict:
    from mirformer.config_tree import merge, parse_overrides

    overrides = parse_overrides(args.set or [])
    if getattr(args, "pretrain_fractions", None):  # a sweep of the pretraining set's share
        if "sweep" in overrides:
            raise ConfigError("--pretrain-fractions is a sweep of pretrain.fraction; --set sweep=... names another: "
                              "give one of the two")
        overrides = merge(overrides, {"sweep": {"key": "pretrain.fraction", "values": args.pretrain_fractions}})
    if getattr(args, "deform", None):  # the flags win over the preset's list and --set deform=...
        overrides = merge(overrides, {"deform": args.deform})
    if args.data_root:
        overrides = merge(overrides, {"data": {"root": args.data_root}})
    trainer = {k: getattr(args, k, None) for k in TRAINER_FLAGS if getattr(args, k, None) is not None}
    if trainer.get("devices", "auto") != "auto":
        trainer["devices"] = int(trainer["devices"])
    if args.quiet:
        trainer["progress"] = False
    return merge(overrides, {"trainer": trainer}) if trainer else overrides


def _print_results(results: dict) -> None:
    if results:  # a DDP worker returns nothing: rank 0 reports
        print()
        print(results["table"])
        print(f"\nrun folder: {results['run_dir']}")
        if results.get("skipped"):
            print(f"skipped {len(results['skipped'])} file(s): see report.md")


def _print_skipped(skipped: dict[str, str]) -> None:
    for path, reason in skipped.items():
        print(f"skipped {path}: {reason}", file=sys.stderr)


def cmd_compare(args) -> int:
    from mirformer.experiments.compare import run_compare

    cfg = _config(args)
    if args.print_config:
        print(json.dumps(asdict(cfg), indent=2))
        return 0
    if args.seeds:
        from mirformer.experiments.seeds import run_seeds

        _print_results(run_seeds(cfg, args.seeds, args.out, progress=not args.quiet))
    else:
        _print_results(run_compare(cfg, args.out, progress=not args.quiet))
    return 0


def cmd_pretrain(args) -> int:
    from mirformer import distributed
    from mirformer.experiments.pretrain import run_pretrain

    encoders = run_pretrain(_config(args), kinds=args.model, run_dir=args.out, progress=not args.quiet)
    if distributed.is_main():
        for kind, path in encoders.items():
            print(f"{kind} encoder: {path}")
    return 0


def cmd_evaluate(args) -> int:
    from mirformer.experiments.evaluate import check_input_overrides, run_evaluate

    cfg = _config(args)
    if args.layer is not None:
        layer = int(args.layer) if args.layer.lstrip("-").isdigit() else args.layer
        cfg = replace(cfg, probe=replace(cfg.probe, layer=layer))
    check_input_overrides(cfg, _overrides(args), [Path(p) for p in args.encoder])
    _print_results(run_evaluate(cfg, args.encoder, representations=args.representation, modes=args.mode,
                                baseline=args.baseline, run_dir=args.out, progress=not args.quiet))
    return 0


def cmd_embed(args) -> int:
    from tqdm.auto import tqdm

    from mirformer.embed import Embedder
    from mirformer.encoder_file import read_encoder
    from mirformer.errors import AudioError
    from mirformer.representations.extract import output_names

    embedder = Embedder(read_encoder(args.encoder), device=args.device)
    layer = None if args.layer == "all" else int(args.layer)
    hop = None if args.hop is None else round(args.hop * embedder.rep.frames_per_second)
    embedder.check(layer=layer, pooling=args.pooling, hop=hop)
    out, names = Path(args.out), output_names(args.audio)
    written, skipped = 0, {}
    for path in tqdm(args.audio, desc="embed", unit="file", disable=args.quiet):
        try:
            embedder.embed_file(path, out / names[path], layer=layer, pooling=args.pooling, hop=hop)
            written += 1
        except AudioError as exc:
            skipped[path] = exc.cause
    what = "(positions, layers, dim)" if layer is None else "(positions, dim)"
    what = "clip vectors" if args.pooling != "none" else f"{what} with <name>.times.npy in seconds"
    print(f"wrote {written} file(s) of {what} to {out}")
    _print_skipped(skipped)
    return 1 if skipped and not written else 0


def cmd_train_vqvae(args) -> int:
    from mirformer import distributed
    from mirformer.datasets.registry import open_dataset
    from mirformer.experiments.tokenizer import train_tokenizer
    from mirformer.representations.vqvae.config import JUKEBOX, SMALL

    cfg = _config(args)
    train_cfg = cfg.tokenizer.train
    if args.vqvae:
        train_cfg = replace(train_cfg, vqvae={"small": SMALL, "jukebox": JUKEBOX}[args.vqvae])
    if args.sample_rate:
        train_cfg = replace(train_cfg, vqvae=replace(train_cfg.vqvae, sample_rate=args.sample_rate))
    train_cfg = replace(train_cfg, **{k: getattr(args, k) for k in ("epochs", "crop_seconds", "batch_size")
                                      if getattr(args, k) is not None})
    distributed.launch(cfg.trainer)  # under DDP every rank runs the rest
    ds = open_dataset(cfg.data.name, cfg.data.root, workers=cfg.workers, **cfg.data.options)
    with distributed.main_first():
        ds.prepare()
    tracks = {s: [t for t in ds.tracks() if t.split == s] for s in ("train", "validation")}
    # The default folder is the one `mirformer compare` looks in, so a comparison reuses this VQ-VAE.
    ckpt, _ = train_tokenizer(cfg, ds, tracks, train_cfg, out=args.out, progress=distributed.is_main() and not args.quiet)
    if distributed.is_main():
        print(f"VQ-VAE checkpoint (official Jukebox layout): {ckpt}")
    return 0


def cmd_data(args) -> int:
    import pandas as pd

    from mirformer.datasets.registry import open_dataset

    ds = open_dataset("music21-styles", args.root, workers=args.workers, preset=args.preset)
    ds.prepare()
    tracks = ds.tracks()
    table = pd.crosstab(pd.Series([t.label for t in tracks], name="class"),
                        pd.Series([t.split for t in tracks], name="split"), margins=True, margins_name="total")
    table = table[[c for c in ("train", "validation", "test", "total") if c in table.columns]]
    print(f"{ds.name} at {ds.root}: {len(tracks)} clips")
    print(table.to_string())
    return 0


def cmd_extract(args) -> int:
    from mirformer.representations.extract import extract_to_npy
    from mirformer.representations.mel import LIBROSA_DEFAULT, THESIS, LogMel

    base = {"thesis": THESIS, "librosa": LIBROSA_DEFAULT}[args.setting]
    fields = {k: v for k, v in (("sample_rate", args.sr), ("n_fft", args.n_fft), ("hop_length", args.hop),
                                ("n_mels", args.n_mels), ("fmin", args.fmin), ("fmax", args.fmax), ("ref", args.ref),
                                ("top_db", args.top_db)) if v is not None}
    rep = LogMel(replace(base, **fields))
    out = extract_to_npy(args.audio, args.out, representation=rep)
    print(f"wrote {len(out['written'])} file(s) to {args.out} (frames x {rep.dim} mels, dB)")
    _print_skipped(out["skipped"])
    return 1 if out["skipped"] and not out["written"] else 0


def cmd_extract_store(args) -> int:
    from mirformer.experiments.prepare import extract_stores

    states = extract_stores(_config(args), shard=args.shard, consolidate=args.consolidate, progress=not args.quiet)
    for name, state in states.items():
        print(f"{name}: {state}")
    return 0


def cmd_extract_vq(args) -> int:
    from mirformer.representations import representation_class
    from mirformer.representations.extract import extract_to_npy

    rep = representation_class(args.name)(args.tokenizer, level=args.level, codebooks=args.codebooks,
                                          trust_pickle=args.trust_checkpoint)
    out = extract_to_npy(args.audio, args.out, representation=rep)
    frames = "(frames,)" if rep.codebooks == 1 else f"(frames, {rep.codebooks})"
    what = (f"{rep.dtype.name} token ids of shape {frames}" if rep.layout.discrete
            else f"(frames, {rep.dim}) {rep.label} vectors (the sum of {rep.codebooks} codebook(s))")
    where = f"level {rep.level}, " if rep.level is not None else ""
    print(f"wrote {len(out['written'])} file(s) of {what} to {args.out} "
          f"({where}hop {rep.hop_length} at {rep.sample_rate} Hz)")
    _print_skipped(out["skipped"])
    return 1 if out["skipped"] and not out["written"] else 0


def cmd_probe(args) -> int:
    from mirformer.experiments.invariance import load_signals, probe_invariance
    from mirformer.experiments.invariance_plot import write_invariance_report
    from mirformer.representations.mel import MelConfig
    from mirformer.representations.vq import VQTokens

    tokenizer = VQTokens(args.tokenizer, level=args.level, codebooks=args.codebooks,
                         trust_pickle=args.trust_checkpoint)
    signals, skipped = load_signals(args.audio, sample_rate=tokenizer.sample_rate, max_seconds=args.max_seconds)
    _print_skipped(skipped)
    if not signals:
        print("mirformer: error: no usable audio", file=sys.stderr)
        return 2
    mel = MelConfig(sample_rate=tokenizer.sample_rate, n_fft=args.n_fft, hop_length=args.hop, n_mels=args.n_mels)
    df = probe_invariance(signals, tokenizer=tokenizer, mel_config=mel)
    print(write_invariance_report(df, args.out))
    print(f"\nwrote {args.out}/invariance.{{csv,md,png}}")
    return 0


def cmd_validate(args) -> int:
    from collections import Counter

    import pandas as pd

    from mirformer.config_tree import parse_overrides
    from mirformer.datasets.registry import open_dataset
    from mirformer.errors import AUDIO_PROBLEMS
    from mirformer.tasks.base import label_counts

    ds = open_dataset(args.dataset, args.root, **parse_overrides(args.option or []))
    report = ds.validate(sr=args.sr, min_seconds=args.min_seconds, workers=args.workers)
    kinds = Counter(p.kind for p in report.bad.values())
    by_kind = ", ".join(f"{kinds[k]} {k}" for k in AUDIO_PROBLEMS if kinds[k])
    print(f"{ds.name} at {ds.root} ({ds.task or 'unlabelled'}): {report.n_tracks} files, {len(report.bad)} bad"
          + (f" ({by_kind})" if by_kind else ""))
    for tid, problem in sorted(report.bad.items()):
        print(f"  {tid}: {problem}")
    if report.flagged:
        print(f"{len(report.flagged)} good file(s) worth a look (they train unless --min-seconds, in compare "
              "data.min_seconds, excludes them):")
        for tid, note in sorted(report.flagged.items()):
            print(f"  {tid}: {note}")
    table = pd.DataFrame(label_counts(ds.task, report.good)).fillna(0).astype(int)
    table = table[[s for s in ("train", "validation", "test") if s in table.columns]]
    if len(table):
        table["total"] = table.sum(axis=1)
        print(f"good files per {ds.task or 'unlabelled'} label and split:")
        print(table.to_string())
    return 1 if report.bad else 0


def build_parser() -> argparse.ArgumentParser:
    from mirformer.datasets.registry import DATASETS
    from mirformer.kinds import KINDS
    from mirformer.training.strategies import STRATEGIES

    p = argparse.ArgumentParser(prog="mirformer", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compare", help="pretrain, fine-tune and compare representations; write a report")
    _run_args(c, preset="the comparison", out="run folder (default: $MIRFORMER_HOME/runs/<preset>-<config hash>)")
    c.add_argument("--seeds", type=_seeds, metavar="K,K,...",
                   help="run once per seed (each resumable in <out>/seed-K/, features shared) and report the "
                        "mean and std across seeds; overrides the config's seed")
    c.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    _fraction_arg(c)
    _deform_arg(c)
    c.set_defaults(func=cmd_compare)

    pt = sub.add_parser("pretrain", help="pretrain encoders only; write self-contained encoder checkpoints")
    _run_args(pt, preset="as for compare; its setups say which kinds pretrain (a separate pretraining set: "
                         "--set pretrain.data={name: audio, root: DIR})",
              out="run folder (default: the one `mirformer compare` with this config uses)")
    pt.add_argument("--model", action="append", choices=[n for n, k in KINDS.items() if k.pretrains],
                    help="a model kind to pretrain (repeat; default: the preset's)")
    _fraction_arg(pt)
    pt.set_defaults(func=cmd_pretrain)

    ev = sub.add_parser("evaluate", help="fine-tune or probe encoder checkpoints on a downstream task; one table")
    _run_args(ev, preset="downstream data, task and fine-tuning settings",
              out="run folder (default: $MIRFORMER_HOME/runs/evaluate-<preset>-<hash>)")
    ev.add_argument("--encoder", action="append", default=[], metavar="CKPT",
                    help="an encoder checkpoint (encoder.pt of `mirformer pretrain` or compare); repeat to compare")
    ev.add_argument("--representation", action="append", default=[], metavar="SPEC",
                    help="another representation, probed frozen (repeat): hear:MODULE[,weights=FILE], "
                         "hf:DIR[,layer=N|all][,trust_remote_code=true], npy:DIR_OR_CSV[,frames_per_second=F], "
                         "encoder:CKPT[,layer=N|all]")
    ev.add_argument("--layer", help="probe layer by layer: a number, last, all (one probe per layer, chosen on "
                                    "validation) or weighted (a learned mix); the encoders are then probed "
                                    "through their frozen states too")
    ev.add_argument("--mode", action="append", choices=STRATEGIES,
                    help="fine-tuning strategy (repeat; default: finetune.strategy; representations: "
                         "linear-probe and/or mlp-probe, default probe.strategies)")
    ev.add_argument("--baseline", action="store_true", help="add the reference setups (the MFCC baseline)")
    _deform_arg(ev)
    ev.set_defaults(func=cmd_evaluate)

    em = sub.add_parser("embed", help="per-file embeddings of audio from an encoder checkpoint, as .npy")
    em.add_argument("audio", nargs="+", help="audio files of any length (decoded, downmixed, resampled)")
    em.add_argument("--encoder", required=True, metavar="CKPT", help="an encoder checkpoint (encoder.pt)")
    em.add_argument("--out", required=True, help="output folder")
    em.add_argument("--layer", default="-1", help="encoder layer: 0 (input) .. n_layers (output, also -1), or all")
    em.add_argument("--pooling", choices=("none", "cls", "mean"), default="none",
                    help="none: one vector per frame / token / patch with its time; cls or mean: one clip vector")
    em.add_argument("--hop", type=float, help="seconds between window starts (default: the window length)")
    em.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    em.add_argument("--quiet", action="store_true", help="no progress bar")
    em.set_defaults(func=cmd_embed)

    tv = sub.add_parser("train-vqvae", help="train a VQ-VAE with Jukebox's objective on a dataset's training split")
    _run_args(tv, preset="dataset, trainer and tokenizer.train settings of this compare preset",
              out="output folder (default: the one `mirformer compare` with this preset uses, "
                  "$MIRFORMER_HOME/runs/vqvae/<dataset>-<hash>)")
    tv.add_argument("--vqvae", choices=("small", "jukebox"),
                    help="architecture instead of the preset's: small (one level, hop 128, 256 codes; minutes on "
                         "a CPU) or jukebox (OpenAI's)")
    tv.add_argument("--sample-rate", type=int, help="audio rate of the VQ-VAE (default: the architecture's)")
    tv.add_argument("--epochs", type=int)
    tv.add_argument("--crop-seconds", type=float, help="training crop length (s)")
    tv.add_argument("--batch-size", type=int)
    tv.set_defaults(func=cmd_train_vqvae)

    d = sub.add_parser("data", help="build the built-in music21-styles dataset and print class counts")
    d.add_argument("--preset", default="quickstart", help="quickstart (5 s clips) or full (30 s clips)")
    d.add_argument("--root", help="where to render (default: under $MIRFORMER_HOME/datasets)")
    d.add_argument("--workers", type=int, default=None, help="render processes (default: all cores)")
    d.set_defaults(func=cmd_data)

    e = sub.add_parser("extract", help="export representations of audio files as .npy")
    esub = e.add_subparsers(dest="representation", required=True)
    m = esub.add_parser("mel", help="log-mel spectrogram in dB, one (frames, mels) .npy per file")
    m.add_argument("audio", nargs="+", help="audio files")
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--setting", choices=("thesis", "librosa"), default="thesis",
                   help="thesis: 44.1 kHz, n_fft 512, hop 128, 86 mels (default); librosa: 22.05 kHz, 2048/512/128")
    m.add_argument("--sr", type=int, help="sample rate (Hz)")
    m.add_argument("--n-fft", type=int)
    m.add_argument("--hop", type=int, help="hop length (samples)")
    m.add_argument("--n-mels", type=int)
    m.add_argument("--fmin", type=float, help="lowest mel band edge (Hz)")
    m.add_argument("--fmax", type=float, help="highest mel band edge (Hz)")
    m.add_argument("--ref", choices=("1.0", "max"), help="dB reference: 1.0 (default) or the clip's max")
    m.add_argument("--top-db", type=float, help="dynamic range below the peak (dB, default 80)")
    m.set_defaults(func=cmd_extract)

    for command, name, text in (("tokens", "vq-tokens", "token ids, one int16 (or int32) .npy per file, of shape "
                                 "(frames,) for one codebook, (frames, N) for N"),
                                ("codebooks", "vq-codebooks",
                                 "quantised vectors (the sum of the codebooks' vectors), one float32 .npy of "
                                 "shape (frames, dim) per file")):
        t = esub.add_parser(command, help=text)
        t.add_argument("audio", nargs="+", help="audio files (decoded, downmixed, resampled to the tokenizer's rate)")
        _tokenizer_args(t)
        t.add_argument("--out", required=True, help="output folder")
        t.set_defaults(func=cmd_extract_vq, name=name)

    st = esub.add_parser("store", help="fill the feature stores `mirformer compare` reads, alone or in shards")
    _run_args(st, preset="the comparison whose inputs to extract", out=None, trainer=False)
    st.add_argument("--shard", type=_shard, metavar="K/N",
                    help="encode only shard K of N (0-based); N processes or jobs fill one store, the last to "
                         "finish writes the memory-mapped store")
    st.add_argument("--consolidate", action="store_true",
                    help="only write the memory-mapped store from the parts written so far (after a shard was rerun)")
    st.set_defaults(func=cmd_extract_store)

    pr = sub.add_parser("probe-invariance", help="how tokens and log-mel change under inaudible transformations")
    pr.add_argument("audio", nargs="+")
    _tokenizer_args(pr)
    pr.add_argument("--out", required=True, help="folder for invariance.csv, .md and .png")
    pr.add_argument("--max-seconds", type=float, default=30.0, help="audio read per file (s)")
    pr.add_argument("--n-fft", type=int, default=2048)
    pr.add_argument("--hop", type=int, default=512)
    pr.add_argument("--n-mels", type=int, default=128)
    pr.set_defaults(func=cmd_probe)

    v = sub.add_parser("validate", help="decode every file of a dataset; report bad ones and counts per split "
                                        "(exit status 1 if any file is bad)")
    v.add_argument("dataset", choices=sorted(DATASETS), metavar="DATASET", help=", ".join(sorted(DATASETS)))
    v.add_argument("root", nargs="?", help="the dataset's folder as unpacked (csv: the manifest file)")
    v.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a dataset option, e.g. subset=large (fma), split=random (gtzan), subset=genre (jamendo)")
    v.add_argument("--sr", type=int, default=22050, help="decoding rate (Hz)")
    v.add_argument("--min-seconds", type=float, default=MIN_SECONDS,
                   help=f"shorter files are reported as too short (default {MIN_SECONDS:g}, the default of "
                        "data.min_seconds under which `mirformer compare` skips them)")
    v.add_argument("--workers", type=int, default=1, help="decoding processes (-1: all cores)")
    v.set_defaults(func=cmd_validate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MirformerError as exc:
        print(f"mirformer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nmirformer: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
