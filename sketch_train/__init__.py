"""Training pieces for run_classification.py.

arguments (the options), presets (preset file + flags), machine (precision, workers, allocator, leaving the process
group), model (any timm model and its head), sources (what a model source names, and a run's class names, without
torch), pypi_weights, optim (frozen parts, layer decay), recipe (collator, loss, optimizer and every callback),
trainer (SketchTrainer), features (the frozen-backbone cache), metrics, inference (collation, TTA, predicting files),
pipeline (the pipeline class), result_files, model_card, hub, checkpoints, disk_checks, and for scripts/: ensemble
(combining finished runs), benchmarking and report_plots.
"""
