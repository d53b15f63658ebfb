"""The checks behind each chapter's exercise: one module per chapter, each returning lesson.exercise.grade()."""
