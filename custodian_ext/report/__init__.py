"""Turn Custodian and c7n-org output folders into the responder's report."""
from custodian_ext.report.loader import ReportInputError, findings, load_runs  # noqa: F401
