"""Presets plus flags: flags win, YAML works, no arguments means the demo."""

from run_classification import parse


def test_no_arguments_runs_the_demo_preset():
    model_args, data_args, training_args = parse([])
    assert (data_args.data_dir, data_args.build_demo_data, training_args.output_dir) == ("data/digits", True, "runs/demo")


def test_flags_override_the_preset(tmp_path):
    _, data_args, training_args = parse(["training_args/demo.json", "--num_train_epochs", "1", "--tta", "hflip", "vflip"])
    assert training_args.num_train_epochs == 1
    assert data_args.tta == ["hflip", "vflip"]


def test_yaml_preset_with_lists_and_comments(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("# a comment\nmodel_name_or_path: test_convnext\nimage_mean: [1.0, 1.0, 1.0]\noutput_dir: runs/x\n"
                      "precision: fp32\n")
    model_args, _, training_args = parse([str(preset)])
    assert model_args.image_mean == [1.0, 1.0, 1.0]
    assert (training_args.bf16, training_args.fp16) == (False, False)
