"""
Sphinx directive ``.. pipeline-reference::``: the YAML reference of every
registered block type, generated from the registry when the docs build.
"""

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


class PipelineReference(SphinxDirective):
    """
    Inserts :func:`pyrf_blocks.pipeline.reference.reference_rst`.
    """

    has_content = False

    def run(self):
        from pyrf_blocks.pipeline.reference import reference_rst

        container = nodes.section()
        lines = StringList(reference_rst().splitlines(), source="<block registry>")
        nested_parse_with_titles(self.state, lines, container)
        return container.children


def setup(app):
    app.add_directive("pipeline-reference", PipelineReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
