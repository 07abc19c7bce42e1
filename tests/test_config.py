import pytest

from mirformer.errors import ConfigError
from mirformer.experiments.config import SETUPS, CompareConfig
from mirformer.experiments.presets import PRESETS, resolve
from mirformer.experiments.run import config_hash
from mirformer.kinds import KINDS
from mirformer.representations import REPRESENTATIONS


def test_run_folder_key_follows_results_not_display():
    base = config_hash(resolve("quickstart"))
    assert config_hash(resolve("quickstart", {"trainer": {"progress": False, "num_workers": 2}, "workers": 1})) == base
    assert config_hash(resolve("quickstart", {"trainer": {"precision": "bf16-mixed"}})) != base
    assert config_hash(resolve("quickstart", {"finetune": {"epochs": 3}})) != base


def test_preset_diff_keeps_base_values_it_does_not_name():
    cfg = resolve("quickstart", {"finetune": {"epochs": 3}})
    assert cfg.finetune.epochs == 3 and cfg.finetune.optim.lr == 3e-4 and cfg.pretrain.epochs == 18


@pytest.mark.parametrize("bad", [{"nope": 1}, {"encoder": {"d_modle": 3}}, {"pretrain": {"epochs": "many"}}])
def test_bad_overrides_are_errors(bad):
    with pytest.raises(ConfigError):
        resolve("quickstart", bad)


def test_quickstart_runs_the_six_setups_patchifier_and_the_baseline_with_tokens_at_the_mel_rate():
    cfg = resolve("quickstart")
    assert len(SETUPS) == 7 and SETUPS[-1] == "mfcc-linear"
    assert cfg.setups == [*SETUPS[:6], "patchifier-pretrained-finetuned", "patchifier-scratch", "mfcc-linear"]
    assert cfg.patchifier.mel == cfg.mel  # one feature store for SpectroFormer and Patchifier
    vq = cfg.tokenizer.train.vqvae
    assert cfg.tokenizer.checkpoint is None and vq.sample_rate == cfg.mel.sample_rate
    assert vq.hop_lengths[-1] == cfg.mel.hop_length  # the thesis' design: one rate for both inputs


def test_unknown_setup_and_bad_vqvae_architecture_are_errors():
    with pytest.raises(ConfigError, match="unknown setup"):
        resolve("quickstart", {"setups": ["tokenformer-pretrained"]})
    with pytest.raises(ConfigError, match="strides_t"):
        resolve("quickstart", {"tokenizer": {"train": {"vqvae": {"strides_t": [3]}}}})


def test_thesis_preset_is_the_thesis_tables_3_to_5():
    cfg = resolve("thesis-fma-medium")
    assert (cfg.data.name, cfg.data.options) == ("fma", {"subset": "medium", "labels": "genre_top"})
    e = cfg.encoder
    assert (e.d_model, e.n_layers, e.n_heads, e.d_ff, e.dropout) == (768, 4, 12, 3072, 0.1)
    # Windows of 1344 frames (3.9 s) for log-mel and for tokens at Jukebox's top-level hop.
    assert [KINDS[k].input(cfg).frames(cfg) for k in ("spectroformer", "tokenformer")] == [(1344, 1344)] * 2
    assert (cfg.mel.sample_rate, cfg.mel.n_fft, cfg.mel.hop_length, cfg.mel.n_mels) == (44100, 512, 128, 86)
    assert cfg.pretrain.batch_size == 64 and cfg.pretrain.optim.warmup == 8000 and cfg.pretrain.optim.lr is None
    assert cfg.pretrain.epochs * -(-19922 // 64) == pytest.approx(156_000, rel=0.01)  # 156k steps
    assert (cfg.finetune.grid.batch_size, cfg.finetune.grid.lr) == ([16, 32], [2e-5, 5e-5])
    assert cfg.finetune.epochs == 40 and cfg.finetune.strategy == "full"
    assert cfg.tokenizer.level is None  # a given vqvae.pth.tar: Jukebox's top level, hop 128
    assert cfg.tokenformer.mask.choose_ratio == 0.3 and cfg.spectroformer.mask.block_frames == 42
    assert cfg.mfcc_linear.sample_rate == cfg.mel.sample_rate


@pytest.mark.parametrize("preset,dataset", [("gtzan", "gtzan"), ("mtat", "mtat"), ("emomusic", "emomusic")])
def test_benchmark_presets_pick_their_dataset_and_keep_tokens_at_the_mel_rate(preset, dataset):
    cfg = resolve(preset)
    assert cfg.data.name == dataset and cfg.finetune.grid.lr == [2e-5, 5e-5]
    vq = cfg.tokenizer.train.vqvae
    assert vq.sample_rate / vq.hop_lengths[-1] == cfg.mel.sample_rate / cfg.mel.hop_length
    assert cfg.mfcc_linear.sample_rate == cfg.mel.sample_rate


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_keeps_its_windows(preset):
    """The presets' windows in frames, from window_seconds: as they were when presets gave frames."""
    cfg = resolve(preset)
    frames = {"quickstart": 128, "codebooks-quickstart": 128, "patchifier-quickstart": 128, "styles-full": 256,
              "thesis-fma-medium": 1344, "gtzan": 256, "mtat": 188, "emomusic": 256, "patchifier-paper": 256}[preset]
    for kind in ("spectroformer", "tokenformer", "codebookformer"):
        assert KINDS[kind].input(cfg).frames(cfg)[0] == frames


def test_config_has_a_section_per_representation_and_kind():
    """A kind's config and a representation's live under their own names; nothing else names them."""
    cfg = CompareConfig()
    for kind in KINDS.values():
        assert isinstance(getattr(cfg, kind.config_key), kind.config_class)
    for rep in REPRESENTATIONS.values():
        if rep.config_key:
            assert isinstance(getattr(cfg, rep.config_key), rep.config_class)
    assert resolve("quickstart", {"patchifier": {"stage1": {"epochs": 3}}}).patchifier.stage1.epochs == 3


def test_another_dataset_drops_the_presets_dataset_options():
    cfg = resolve("quickstart", {"data": {"name": "csv", "root": "x.csv"}})
    assert cfg.data.options == {}
    assert resolve("quickstart", {"data": {"name": "gtzan", "options": {"split": "random"}}}).data.options == {
        "split": "random"}
