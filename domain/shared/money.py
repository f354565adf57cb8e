"""Money: integer minor units plus an ISO 4217 currency; never floats."""

from __future__ import annotations

from dataclasses import dataclass

# ISO 4217 minor-unit exponents for the currencies Odim prices in (XAF has no minor unit).
MINOR_UNIT_EXPONENT = {"XAF": 0, "XOF": 0, "NGN": 2, "INR": 2, "GHS": 2, "KES": 2, "USD": 2, "EUR": 2}
SYMBOLS = {"XAF": "FCFA", "XOF": "FCFA", "NGN": "₦", "INR": "₹", "USD": "$", "EUR": "€"}


@dataclass(frozen=True)
class Money:
    amount_minor: int
    currency: str

    def formatted(self) -> str:
        """Human form: ``25,000 FCFA``, ``₦15,000.00``, ``₹1,499.00`` (grouping with commas)."""
        exp = MINOR_UNIT_EXPONENT.get(self.currency, 2)
        sign = "-" if self.amount_minor < 0 else ""
        whole, frac = divmod(abs(self.amount_minor), 10**exp) if exp else (abs(self.amount_minor), 0)
        number = f"{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
        symbol = SYMBOLS.get(self.currency)
        if self.currency in ("XAF", "XOF"):
            return f"{sign}{number} {symbol}"
        if symbol:
            return f"{sign}{symbol}{number}"
        return f"{sign}{number} {self.currency}"
