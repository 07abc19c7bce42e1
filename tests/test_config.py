import pytest

from mirformer.errors import ConfigError
from mirformer.experiments.compare import config_hash
from mirformer.experiments.config import SETUPS, resolve


def test_run_folder_key_follows_results_not_display():
    base = config_hash(resolve("quickstart"))
    assert config_hash(resolve("quickstart", {"trainer": {"progress": False, "num_workers": 2}, "workers": 1})) == base
    assert config_hash(resolve("quickstart", {"trainer": {"precision": "bf16-mixed"}})) != base
    assert config_hash(resolve("quickstart", {"finetune": {"epochs": 3}})) != base


def test_preset_diff_keeps_base_values_it_does_not_name():
    cfg = resolve("quickstart", {"finetune": {"epochs": 3}})
    assert cfg.finetune.epochs == 3 and cfg.finetune.optim.lr == 3e-4 and cfg.pretrain.epochs == 20


@pytest.mark.parametrize("bad", [{"nope": 1}, {"encoder": {"d_modle": 3}}, {"pretrain": {"epochs": "many"}}])
def test_bad_overrides_are_errors(bad):
    with pytest.raises(ConfigError):
        resolve("quickstart", bad)


def test_quickstart_runs_the_six_setups_and_the_baseline_with_tokens_at_the_mel_rate():
    cfg = resolve("quickstart")
    assert cfg.setups == list(SETUPS) and len(SETUPS) == 7
    vq = cfg.tokenizer.train.vqvae
    assert cfg.tokenizer.checkpoint is None and vq.sample_rate == cfg.mel.sample_rate
    assert vq.hop_lengths[-1] == cfg.mel.hop_length  # the thesis' design: one rate for both inputs


def test_unknown_setup_and_bad_vqvae_architecture_are_errors():
    with pytest.raises(ConfigError, match="unknown setup"):
        resolve("quickstart", {"setups": ["tokenformer-pretrained"]})
    with pytest.raises(ConfigError, match="strides_t"):
        resolve("quickstart", {"tokenizer": {"train": {"vqvae": {"strides_t": [3]}}}})
