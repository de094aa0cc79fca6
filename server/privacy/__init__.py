"""Personal information (PIPL): a person's export, erasure, and the retention of everything
personal (docs/privacy.md)."""
