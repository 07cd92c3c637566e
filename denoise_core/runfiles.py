"""The names of the files in a training run's folder, defined once for the trainer, the studio and the tools.

    <run>/config.json        the run's TrainConfig (and its model config)
    <run>/status.json        state (running / stopped / finished / failed), epoch, pid
    <run>/events.jsonl       the append-only event log (`denoise_core.history`)
    <run>/history.xlsx       the workbook rebuilt from it after every epoch
    <run>/last.pt            everything resume needs
    <run>/best.pt            the lowest-validation-loss epoch's model
    <run>/checkpoints/       the last few epochs' models
    <run>/MODEL_CARD.md      written when the run finishes (`denoise_core.model_card`)
    <run>/STOP               asks a running trainer to stop after its epoch
    <run>/job.json, train.log  written by the studio's job runner
    <run>/bench/<name>/      benchmark outputs for this run's checkpoint (optional; read by the model card)
"""

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
EVENTS_FILE = "events.jsonl"
WORKBOOK_FILE = "history.xlsx"
LAST_FILE = "last.pt"
BEST_FILE = "best.pt"
CHECKPOINTS_DIR = "checkpoints"
MODEL_CARD_FILE = "MODEL_CARD.md"
STOP_FILE = "STOP"
JOB_FILE = "job.json"
LOG_FILE = "train.log"
BENCH_DIR = "bench"
