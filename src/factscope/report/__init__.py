"""Results into figures and one-file HTML reports; plain data in, nothing from the model."""

from factscope.report.html import Section, Table, read_report_data, render_report, write_report
from factscope.report.locate_html import lens_report, patch_report, trace_report
from factscope.report.plots import (
    dla_bar,
    head_heatmap,
    head_position_heatmaps,
    lens_plot,
    patch_heatmap,
    save_figure,
    token_label,
    trace_heatmap,
)

__all__ = [
    "Section",
    "Table",
    "dla_bar",
    "head_heatmap",
    "head_position_heatmaps",
    "lens_plot",
    "lens_report",
    "patch_heatmap",
    "patch_report",
    "read_report_data",
    "render_report",
    "save_figure",
    "token_label",
    "trace_heatmap",
    "trace_report",
    "write_report",
]
