"""The detail pane: the fields of the selected record as a tree; moving onto a field highlights its bytes."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from vutrace.tui.detail import Item
from vutrace.tui.messages import FieldHighlighted


class DetailTree(Tree[str]):
    """Fields of one record; node data is the name of the field's byte span."""

    DEFAULT_CSS = """
    DetailTree { background: $surface; }
    """

    def __init__(self, **kw) -> None:
        super().__init__("no record", **kw)
        self.show_root = False
        self.guide_depth = 2

    def show_items(self, items: list[Item]) -> None:
        """Replace the tree with ``items``."""
        self.clear()
        for item in items:
            self._add(self.root, item)
        self.root.expand()
        self.post_message(FieldHighlighted(None))

    def _add(self, parent: TreeNode[str], item: Item) -> None:
        label = Text(item.label)
        if item.children:
            node = parent.add(label, item.span, expand=item.expand)
            for child in item.children:
                self._add(node, child)
        else:
            parent.add_leaf(label, item.span)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        event.stop()
        self.post_message(FieldHighlighted(event.node.data))
