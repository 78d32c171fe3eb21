"""Text views of loaded records: one-line summaries, field trees and hex dumps (no byte parsing here)."""
