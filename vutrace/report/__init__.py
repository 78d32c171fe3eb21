"""Views for people: plotly figures (``figures``, reusable in notebooks) and the self-contained HTML report."""
