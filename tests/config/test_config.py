"""Strict overrides and strict recipe loading (rsb.config)."""
from __future__ import annotations

import pytest

from rsb.config.schema import Config, to_dict

from rsb.config.load import apply_overrides, config_from_dict, load_recipe
from rsb.errors import UserError


@pytest.fixture
def cfg() -> Config:
    return load_recipe("a2")


def test_override_float_plain(cfg):
    out = apply_overrides(cfg, ["optim.lr=0.004"])
    assert out.optim.lr == pytest.approx(4e-3)
    assert type(out.optim.lr) is float
    assert cfg.optim.lr == pytest.approx(5e-3), "apply_overrides must not modify its input"


def test_override_float_with_dot_exponent(cfg):
    out = apply_overrides(cfg, ["optim.lr=4.0e-3"])
    assert out.optim.lr == pytest.approx(4e-3) and type(out.optim.lr) is float


@pytest.mark.parametrize("raw,value", [("4e-3", 4e-3), ("1e-6", 1e-6), ("5E-3", 5e-3)])
def test_override_float_scientific_without_dot(cfg, raw, value):
    out = apply_overrides(cfg, [f"optim.lr={raw}"])
    assert out.optim.lr == pytest.approx(value) and type(out.optim.lr) is float


def test_override_int(cfg):
    out = apply_overrides(cfg, ["train.batch_per_device=128", "sched.epochs=3"])
    assert out.train.batch_per_device == 128 and type(out.train.batch_per_device) is int
    assert out.sched.epochs == 3 and type(out.sched.epochs) is int


@pytest.mark.parametrize("raw,value", [("true", True), ("false", False), ("True", True)])
def test_override_bool(cfg, raw, value):
    out = apply_overrides(cfg, [f"model.compile={raw}"])
    assert out.model.compile is value


def test_override_list(cfg):
    out = apply_overrides(cfg, ["aug.scale=[0.25, 1.0]", "optim.betas=[0.9, 0.99]"])
    assert out.aug.scale == [0.25, 1.0] and isinstance(out.aug.scale, list)
    assert out.optim.betas == [0.9, 0.99]


def test_override_null_for_optional(cfg):
    out = apply_overrides(cfg, ["optim.max_grad_norm=null", "loss.target_threshold=null"])
    assert out.optim.max_grad_norm is None
    assert out.loss.target_threshold is None
    back = apply_overrides(out, ["optim.max_grad_norm=2"])
    assert back.optim.max_grad_norm == 2.0 and type(back.optim.max_grad_norm) is float


def test_null_for_non_optional_is_rejected(cfg):
    with pytest.raises(UserError, match=r"optim\.lr"):
        apply_overrides(cfg, ["optim.lr=null"])


def test_override_string_and_empty_string(cfg):
    out = apply_overrides(cfg, ["aug.rand_augment=rand-m9-mstd0.5", "model.name=resnet18"])
    assert out.aug.rand_augment == "rand-m9-mstd0.5"
    assert out.model.name == "resnet18"
    off = apply_overrides(cfg, ['aug.rand_augment=""'])
    assert off.aug.rand_augment == ""


def test_override_empty_value_gives_empty_string(cfg):
    off = apply_overrides(cfg, ["aug.rand_augment="])
    assert off.aug.rand_augment == ""


def test_override_value_may_contain_equals(cfg):
    out = apply_overrides(cfg, ["aug.rand_augment=rand-m9=x"])
    assert out.aug.rand_augment == "rand-m9=x"


def test_later_override_wins(cfg):
    out = apply_overrides(cfg, ["sched.epochs=3", "sched.epochs=4"])
    assert out.sched.epochs == 4


def test_int_for_float_field_is_converted(cfg):
    out = apply_overrides(cfg, ["optim.lr=1", "sched.warmup_epochs=2"])
    assert out.optim.lr == 1.0 and type(out.optim.lr) is float
    assert out.sched.warmup_epochs == 2.0 and type(out.sched.warmup_epochs) is float


@pytest.mark.parametrize("key", ["train.batch_per_device", "sched.epochs", "model.num_classes"])
def test_bool_not_accepted_as_int(cfg, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        apply_overrides(cfg, [f"{key}=true"])


def test_bool_not_accepted_as_float(cfg):
    with pytest.raises(UserError, match=r"optim\.lr"):
        apply_overrides(cfg, ["optim.lr=true"])


def test_float_not_accepted_as_int(cfg):
    with pytest.raises(UserError, match=r"train\.batch_per_device"):
        apply_overrides(cfg, ["train.batch_per_device=12.5"])


@pytest.mark.parametrize("item,key", [
    ("sched.epochs=abc", "sched.epochs"),
    ("optim.lr=fast", "optim.lr"),
    ("aug.scale=0.5", "aug.scale"),
    ("model.compile=3", "model.compile"),
    ("model.name=5", "model.name"),
])
def test_wrong_type_names_key(cfg, item, key):
    with pytest.raises(UserError) as e:
        apply_overrides(cfg, [item])
    assert key in str(e.value)


@pytest.mark.parametrize("bad,near", [
    ("optim.lrr=1.0", "optim.lr"),
    ("sched.epoch=3", "sched.epochs"),
    ("train.batch_per_devic=3", "train.batch_per_device"),
    ("aug.mixup_alph=0.1", "aug.mixup_alpha"),
    ("loss.threshold=0.3", "loss.target_threshold"),
])
def test_unknown_key_names_closest(cfg, bad, near):
    with pytest.raises(UserError) as e:
        apply_overrides(cfg, [bad])
    msg = str(e.value)
    assert bad.split("=")[0] in msg
    assert f"'{near}'" in msg


def test_unknown_key_leaves_no_partial_change(cfg):
    with pytest.raises(UserError):
        apply_overrides(cfg, ["sched.epochs=3", "nope.key=1"])
    assert cfg.sched.epochs == 300


@pytest.mark.parametrize("item", ["optim.lr", "optim.lr 4e-3", ""])
def test_missing_equals(cfg, item):
    with pytest.raises(UserError, match="="):
        apply_overrides(cfg, [item])


def test_section_itself_is_not_a_key(cfg):
    with pytest.raises(UserError):
        apply_overrides(cfg, ["optim=1"])


def test_unknown_recipe_name_lists_available():
    with pytest.raises(UserError) as e:
        load_recipe("a4")
    msg = str(e.value)
    assert "a4" in msg
    for name in ("a1", "a2", "a3"):
        assert name in msg


def test_unknown_key_in_recipe_file(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: x\noptim:\n  lrr: 0.1\n")
    with pytest.raises(UserError) as e:
        load_recipe(str(p))
    assert "optim.lrr" in str(e.value) and "'optim.lr'" in str(e.value)


@pytest.mark.parametrize("text,named", [
    ("optimizer:\n  lr: 0.1\n", "optimizer"),     # an unknown section
    ("sched:\n  epochs: ten\n", r"sched\.epochs"),  # a value of the wrong type
    ("optim: 3\n", "optim"),                      # a section that is not a mapping
])
def test_a_bad_recipe_file_is_refused_naming_what_is_wrong(tmp_path, text, named):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    with pytest.raises(UserError, match=named):
        load_recipe(str(p))


def test_recipe_file_without_base_must_be_complete(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: tiny\noptim:\n  lr: 1\n")
    with pytest.raises(UserError, match=r"r.yaml has no `base:` and lacks \d+ keys: model.name, .*aug.rand_augment"
                                         r".*start the file with `base: a2`") as e:
        load_recipe(str(p))
    assert "optim.lr," not in str(e.value) and "name," not in str(e.value).split("keys:")[1][:6]


def test_layered_recipe_is_its_base_with_the_changes(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text("base: a2\noptim:\n  lr: 1\n")
    cfg = load_recipe(str(p))
    a2 = load_recipe("a2")
    assert cfg.optim.lr == 1.0 and type(cfg.optim.lr) is float
    assert cfg.base == "a2" and cfg.name == "tiny"
    assert cfg.aug == a2.aug and cfg.sched == a2.sched and cfg.optim.weight_decay == a2.optim.weight_decay
    # A base given as a path is read relative to the file that names it, and layers stack.
    (tmp_path / "sub").mkdir()
    q = tmp_path / "sub" / "longer.yaml"
    q.write_text("base: ../tiny.yaml\nname: longer\nsched:\n  epochs: 7\n")
    cfg2 = load_recipe(str(q))
    assert (cfg2.name, cfg2.base, cfg2.sched.epochs, cfg2.optim.lr) == ("longer", "../tiny.yaml", 7, 1.0)
    assert cfg2.aug == a2.aug


def test_layered_recipe_errors(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("base: a9\n")
    with pytest.raises(UserError, match="unknown recipe 'a9'"):
        load_recipe(str(p))
    p.write_text("base: r.yaml\n")
    with pytest.raises(UserError, match="names itself as a base"):
        load_recipe(str(p))
    p.write_text("base: a2\noptim:\n  lrr: 1\n")
    with pytest.raises(UserError, match="optim.lrr"):
        load_recipe(str(p))


def test_to_dict_round_trip(cfg):
    assert config_from_dict(to_dict(cfg)) == cfg


# ---- choice fields: checked when read, with the nearest valid value ----------------------------------------

from rsb.config.schema import CHOICES  # noqa: E402


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_every_choice_field_rejects_a_typo_with_the_nearest_value(cfg, key):
    valid = CHOICES[key][0]
    typo = valid[:-1] + ("x" if valid[-1] != "x" else "y")
    with pytest.raises(UserError, match=rf"{key.replace('.', r'[.]')} must be one of .*did you mean '{valid}'"):
        apply_overrides(cfg, [f"{key}={typo}"])


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_every_choice_value_is_accepted(cfg, key):
    for value in CHOICES[key]:
        assert apply_overrides(cfg, [f"{key}={value}"]) is not None


def test_choice_in_a_recipe_file_is_checked(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("sched:\n  name: cosin\n")
    with pytest.raises(UserError, match="sched.name must be one of cosine"):
        load_recipe(str(p))


def test_model_name_is_checked_against_timm(cfg):
    with pytest.raises(UserError, match="model.name 'resnet5O' is not a timm model.*did you mean 'resnet50'"):
        apply_overrides(cfg, ["model.name=resnet5O"])
    assert apply_overrides(cfg, ["model.name=resnet10t"]).model.name == "resnet10t"


def test_print_config_rejects_a_bad_choice_before_reading_data(tmp_path):
    import train
    missing = tmp_path / "no-such-data"
    assert train.main(["--recipe", "a2", "--data", str(missing), "--print-config", "loss.name=bcee"]) == 2


def test_sweep_launch_checks_the_config_once_before_starting_any_seed(tmp_path, capsys):
    """At sample scale warmup is 1 epoch, so sched.epochs=1 is invalid: the launch fails at once, no seed runs."""
    from rsb.sweep import cli
    assert cli.main(["launch", "--seeds", "1-3", "--out", str(tmp_path / "sw"), "--cluster", "local",
                     "sched.epochs=1"]) == 2
    err = capsys.readouterr().err
    assert "sched.warmup_epochs must be in [0, sched.epochs)" in err
    assert not (tmp_path / "sw" / "sweep.json").exists() and not list((tmp_path).glob("sw/seed*"))


def test_overrides_may_come_between_and_after_the_flags():
    import train
    args = train.parse_args(["optim.lr=1e-3", "--recipe", "a3", "sched.epochs=3", "--workers", "2", "train.seed=4"])
    assert args.recipe == "a3" and args.workers == 2
    assert args.overrides == ["optim.lr=1e-3", "sched.epochs=3", "train.seed=4"]


@pytest.mark.parametrize("spelling", ["none", "None", "null", "~"])
def test_none_and_null_set_an_optional_value_to_nothing(cfg, spelling):
    assert apply_overrides(cfg, [f"optim.max_grad_norm={spelling}"]).optim.max_grad_norm is None
    assert apply_overrides(cfg, [f"loss.target_threshold={spelling}"]).loss.target_threshold is None
    with pytest.raises(UserError, match="sched.epochs must be of type int"):
        apply_overrides(cfg, [f"sched.epochs={spelling}"])  # not optional: still an error


def test_timm_flags_are_answered_with_the_override(capsys):
    from rsb.train import main, timm_flag_error
    assert timm_flag_error(["-b", "128"]) == ("'-b 128' is a timm train.py flag; recipe values change through "
                                              "overrides here: use train.batch_per_device=128 (every key and its "
                                              "value: --print-config).")
    assert "use sched.epochs=10 " in timm_flag_error(["--recipe", "a2", "--epochs=10"])
    assert "use optim.lr=0.1 " in timm_flag_error(["--lr", "0.1"])
    assert "use model.name=resnet18 " in timm_flag_error(["--model", "resnet18"])
    assert timm_flag_error(["--amp"]).endswith("use train.amp=true.")
    assert timm_flag_error(["--channels-last"]).endswith("use model.channels_last=true.")
    assert timm_flag_error(["-j", "4"]) == "'-j' is timm's spelling; here it is --workers."
    assert timm_flag_error(["--recipe", "a2", "--workers", "2", "optim.lr=1"]) is None
    assert main(["-b", "128", "--print-config"]) == 2
    assert "train.batch_per_device=128" in capsys.readouterr().err
    assert "use sched.cooldown_epochs=10 " in timm_flag_error(["--cooldown-epochs", "10"])
    assert timm_flag_error(["--dist-bn", "reduce"]).endswith("use train.average_bn_stats=true.")


def test_timms_clip_grad_is_not_mistaken_for_lambs_own_clip():
    """timm's --clip-grad is a second clip outside the optimizer, on top of Lamb's max_grad_norm: the answer says
    so, and names what rsb has instead, rather than offering optim.max_grad_norm as its equal."""
    from rsb.train import timm_flag_error
    answer = timm_flag_error(["--clip-grad", "1.0"])
    assert answer.startswith("'--clip-grad' is a timm train.py flag with no equal here: ")
    assert "outside the optimizer" in answer and "on top of Lamb's own clip" in answer
    assert "rsb has no such outside clip for LAMB" in answer and "optim.max_grad_norm sets Lamb's own" in answer
    assert "use optim.max_grad_norm=" not in answer


def test_help_lists_the_recipe_sections_and_list_recipes(capsys):
    from rsb.train import main
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "model, data, aug, loss, optim, sched, train, run" in out and "--print-config" in out
    assert main(["--list-recipes"]) == 0
    listed = capsys.readouterr().out
    assert [line.split()[0] for line in listed.splitlines()[:6]] == ["a1", "a1_timm2021", "a2", "a2_timm2021",
                                                                     "a3", "a3_timm2021"]


# ---- the choices and checks of the original ResNet recipes (cifar10_resnet, torchvision) ----------------------
@pytest.mark.parametrize("recipe,overrides,message", [
    ("cifar10_resnet", ["sched.epochs=10"], "give the run length as sched.epochs or as sched.max_steps"),
    ("a2", ["sched.epochs=0"], "give the run length as sched.epochs or as sched.max_steps"),
    ("a2", ["sched.milestones=[10]"], "belong to sched.name=step"),
    ("cifar10_resnet", ["sched.milestones=[48000,32000]"], "increasing order"),
    ("cifar10_resnet", ["sched.warmup_until_error=80", "aug.mixup_alpha=0.2"], "needs Mixup and CutMix off"),
    ("cifar10_resnet", ["data.train_size=48"], "must be 32 for data.dataset=cifar10"),
    ("cifar10_resnet", ["aug.rand_augment=rand-m9"], "not applied to CIFAR-10"),
    ("cifar10_resnet", ["aug.scale=[0.08,1.0]"], "no RandomResizedCrop there"),
    ("a2", ["data.normalize=pixel_mean"], "is for data.dataset=cifar10"),
    ("a2", ["sched.cooldown_epochs=10"], "sched.cooldown_epochs belongs to sched.name=cosine_per_epoch"),
    ("a2_timm2021", ["sched.cooldown_epochs=-1"], "must be 0 or more; got -1"),
    ("a2_timm2021", ["sched.epochs=0", "sched.max_steps=1000"], "cosine_per_epoch runs over whole epochs"),
])
def test_original_recipe_checks(recipe, overrides, message):
    from rsb.training.run_config import build_config
    with pytest.raises(UserError, match=message):
        build_config(recipe, overrides, sample=False)


@pytest.mark.parametrize("key,bad", [("optim.name", "sgdd"), ("sched.name", "steps"), ("sched.unit", "iters"),
                                     ("data.normalize", "pixel")])  # data.dataset: tests/data/test_families.py
def test_new_choice_fields_reject_typos(cfg, key, bad):
    with pytest.raises(UserError, match=f"{key} must be one of"):
        apply_overrides(cfg, [f"{key}={bad}"])


def test_sample_overlay_follows_the_data_set():
    from rsb.training.run_config import build_config
    cifar = build_config("cifar10_resnet", [], sample=True)
    assert (cifar.sched.max_steps, cifar.sched.milestones, cifar.data.val_holdout) == (200, [100, 150], 200)
    assert (cifar.data.test_size, cifar.sched.epochs) == (32, 0)  # steps, not the ImageNet sample's epochs
    a2 = build_config("a2", [], sample=True)
    assert (a2.data.test_size, a2.sched.epochs, a2.sched.max_steps) == (40, 3, 0)


def test_a_key_an_older_run_lacks_counts_as_its_default_when_resuming():
    """A checkpoint written before a key existed holds no value for it; the run then did what the key's default
    does, so resuming it with the same recipe is no change, and with another value is one."""
    from rsb.config.schema import changed_recipe_values, to_dict
    cfg = load_recipe("a2")
    older = to_dict(cfg)
    del older["model"]["zero_init_last"], older["sched"]["cooldown_epochs"], older["train"]["average_bn_stats"]
    assert changed_recipe_values(older, cfg) == []
    assert changed_recipe_values(older, apply_overrides(cfg, ["train.average_bn_stats=true"])) == [
        "train.average_bn_stats"]
    assert changed_recipe_values(older, load_recipe("torchvision")) != []
