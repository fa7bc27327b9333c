"""Code shared by every hookpost service: settings, ids, secrets, signing, db, broker."""
