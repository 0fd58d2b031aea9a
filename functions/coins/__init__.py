"""GUILD Coins: the coin economy behind GUILD. All logic lives in this package;
functions/main.py only exposes it as Cloud Functions."""
