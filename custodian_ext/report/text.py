"""A plain-text summary for the terminal, ordered by runbook step then severity."""


def render_text(runs, fail_on=None):
    """The terminal summary of ``runs`` (the ``text`` format of the report)."""
    from custodian_ext.report import document, render
    return render.render(document.build(runs, fail_on=fail_on), 'text')
