"""Training pieces for run_classification.py: arguments, model, precision, metrics and outputs."""
