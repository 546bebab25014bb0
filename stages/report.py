"""Stage report: every metrics file as tables and every plot, in reports/summary.md (plots linked)
and reports/index.html (one self-contained page, plots embedded). Sections whose metrics are absent
are left out. `report.categories` adds the GAN paper's table: the targets averaged per category."""

from debiaslab.errors import stage_main
from debiaslab.io import write_text
from debiaslab.params import load_params
from debiaslab.report import collect, render_html, render_markdown

METRICS, REPORTS = "metrics", "reports"


@stage_main("report")
def main() -> None:
    params = load_params("report", "attributes")
    sections = collect(METRICS, REPORTS, categories=params["report"].categories,
                       protected=params["attributes"].protected[0])
    write_text(f"{REPORTS}/summary.md", render_markdown(sections))
    write_text(f"{REPORTS}/index.html", render_html(sections))
    tables, plots = sum(len(s.tables) for s in sections), sum(len(s.plots) for s in sections)
    print(f"report: {len(sections)} sections, {tables} tables, {plots} plots -> "
          f"{REPORTS}/summary.md, {REPORTS}/index.html")


if __name__ == "__main__":
    main()
