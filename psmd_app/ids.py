"""Component ids of the app, in kebab-case, defined once.

Callbacks and tests refer to these constants, never to ids typed inline.
"""

# Address bar and server-side state held as small keys in the browser.
URL = "url"
SETTINGS_STORE = "settings-store"
PROBLEM_STORE = "problem-store"
RESULT_STORE = "result-store"
CURVES_STORE = "curves-store"
EMBEDDING_STORE = "embedding-store"
# Result key of the plan last drawn: the unit map redraws after the plan.
PLAN_DRAWN = "plan-drawn"
# Ranks the zoomed plan heatmap shows (block-summed plans re-drawn finer).
PLAN_WINDOW = "plan-window"
SELECTED_UNIT = "selected-unit-store"
# This browser tab's secret token and the datasets it uploaded or opened.
SESSION = "session-store"
SESSION_DATASETS = "session-datasets-store"

# Controls.
DATASET = "dataset-select"
VIEW = "view-select"
VIEW_ROW = "view-row"
COST = "cost-select"
METHOD = "method-select"
METHOD_NOTE = "method-note"
REG = "reg-input"
UNMATCHED = "unmatched-slider"
UNMATCHED_LABEL = "unmatched-label"
DATASET_DESCRIPTION = "dataset-description"
UPLOAD = "upload-data"
UPLOAD_NOTE = "upload-note"
OPEN_PATH = "open-path-input"
OPEN_BUTTON = "open-path-button"

# Views.
BATCH_HEATMAP = "batch-heatmap"
PLAN_HEATMAP = "plan-heatmap"
RANKING_CURVE = "ranking-curve"
ALIGNMENT_CURVE = "alignment-curve"
EMBEDDING_PLOT = "embedding-plot"
UNIT_DETAIL = "unit-detail"
UNIT_TUNING = "unit-tuning"
STATUS_LINE = "status-line"
CURVES_STATUS = "curves-status"
ALERT = "alert"
ALERT_TEXT = "alert-text"
ALERT_CLOSE = "alert-close"

# Background work: progress and cancel.
CURVES_PROGRESS = "curves-progress"
CURVES_CANCEL = "curves-cancel"
CURVES_BUSY = "curves-busy"
EMBEDDING_PROGRESS = "embedding-progress"
EMBEDDING_PROGRESS_TEXT = "embedding-progress-text"
EMBEDDING_CANCEL = "embedding-cancel"
EMBEDDING_BUSY = "embedding-busy"

# Exports.
EXPORT_CSV = "export-ranking-csv"
EXPORT_NPZ = "export-plan-npz"
EXPORT_JSON = "export-provenance-json"
DOWNLOAD_CSV = "download-ranking-csv"
DOWNLOAD_NPZ = "download-plan-npz"
DOWNLOAD_JSON = "download-provenance-json"

# Plain-language explanations, one per view.
HELP_PREFIX = "help-"
