"""Analysis: everything that only reads run directories (run tables, fits, CEGs, diagnostics, accounting, figures)."""
