"""What `cowsnap watch` says about the program it watched (report)."""
