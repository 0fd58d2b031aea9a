"""The local stack: the real Firestore emulator plus every function on one port."""
