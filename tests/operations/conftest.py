"""Operations tests: privacy (export, erasure), reports, exports, the operator's console and
observability."""
