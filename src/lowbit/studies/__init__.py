"""The seed tables: each study runs rows of choices on one model and writes results.json,
report.md and a PNG chart under reports/<study>-<model>/."""
