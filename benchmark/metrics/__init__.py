"""One scorer per metric: ``score(case, ctx) -> CaseResult`` (extraction A, codegen B,
attribution C, scenario S)."""
