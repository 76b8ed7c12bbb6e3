"""Publishing: the ledger, and one publisher per destination behind one protocol (issue 6)."""
