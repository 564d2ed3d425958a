#!/usr/bin/env python3
"""Regenerates python_golden.tsv: reference values for the video prompt text
of transformers' SmolVLM processor, computed with the same Python functions
it calls.

  apt-get install python3-num2words   # Debian 12: num2words 0.5.10
  /usr/bin/python3 internal/prompt/testdata/gen_golden.py > internal/prompt/testdata/python_golden.tsv

Lines: kind<TAB>input<TAB>expected
  words     n        num2words(n)                              (frame count)
  duration  seconds  str(timedelta(seconds=int(seconds)))      (video length)
  mmss      seconds  f"{int(s // 60):02d}:{int(s % 60):02d}"   (frame time)
"""
from datetime import timedelta

from num2words import num2words

numbers = list(range(0, 131)) + [
    199, 200, 201, 210, 256, 300, 512, 999, 1000, 1001, 1005, 1010, 1099, 1100,
    1105, 1999, 2000, 2024, 10000, 12345, 21000, 99999, 100000, 100001, 123456,
    999999,
]
for n in numbers:
    print(f"words\t{n}\t{num2words(n)}")

for s in [0, 0.9, 9, 9.99, 59, 60, 65, 599, 3599, 3600, 3661.5, 36000, 86399,
          86400, 90061, 172800, 1000000]:
    print(f"duration\t{s!r}\t{timedelta(seconds=int(s))}")

for s in [0.0, 0.5, 1.0, 8.333333333333334, 59.0, 59.999999, 60.0, 65.7,
          119.99999999999999, 120.0, 599.96, 3600.0, 5999.5, 6000.0, 0.1 * 3]:
    print(f"mmss\t{s!r}\t{int(s // 60):02d}:{int(s % 60):02d}")
