"""Building: drive BuildKit or the classic builder, parse what they print, report each step, record each build."""
