"""Presets plus flags: flags win, YAML works, no arguments means the demo."""

from run_classification import parse


def test_no_arguments_runs_the_demo_preset():
    model_args, data_args, training_args = parse([])
    assert (data_args.data_dir, data_args.build_demo_data, training_args.output_dir) == ("data/digits", True, "runs/demo")


def test_flags_override_the_preset(tmp_path):
    _, data_args, training_args = parse(["training_args/demo.yaml", "--num_train_epochs", "1", "--tta", "hflip", "vflip"])
    assert training_args.num_train_epochs == 1
    assert data_args.tta == ["hflip", "vflip"]


def test_yaml_preset_with_lists_and_comments(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("# a comment\nmodel_name_or_path: test_convnext\nimage_mean: [1.0, 1.0, 1.0]\noutput_dir: runs/x\n"
                      "precision: fp32\n")
    model_args, _, training_args = parse([str(preset)])
    assert model_args.image_mean == [1.0, 1.0, 1.0]
    assert (training_args.bf16, training_args.fp16) == (False, False)


def test_flags_without_a_preset_or_data_run_the_demo_shorter():
    _, data_args, training_args = parse(["--num_train_epochs", "2"])
    assert (data_args.data_dir, data_args.build_demo_data, training_args.num_train_epochs) == ("data/digits", True, 2)


def test_flags_that_name_data_start_from_the_defaults_not_the_demo(quickdraw_mini):
    for flags in (["--data_dir", str(quickdraw_mini)], [f"--train_csv={quickdraw_mini}/train.csv"]):
        model_args, data_args, training_args = parse(flags)
        assert not data_args.build_demo_data and model_args.model_name_or_path == "timm/convnext_base.fb_in22k_ft_in1k"


def test_trainer_defaults_that_would_break_a_flag_only_run_are_the_pipelines_own(quickdraw_mini, caplog):
    _, _, training_args = parse(["--data_dir", str(quickdraw_mini), "--precision", "fp32"])
    assert training_args.remove_unused_columns is False  # the transforms read the image column
    assert training_args.logging_steps == 0.02  # a short run still logs its training loss
    assert training_args.report_to in ("none", [], ["none"])


def test_remove_unused_columns_true_is_one_warning_not_a_crash(quickdraw_mini, caplog):
    _, _, training_args = parse(["--data_dir", str(quickdraw_mini), "--remove_unused_columns", "true"])
    assert training_args.remove_unused_columns is False
    assert [r.getMessage() for r in caplog.records if "remove_unused_columns" in r.getMessage()] == [
        "Ignoring --remove_unused_columns true: the transforms need the image column, which it would drop; training "
        "goes on with it false."]
