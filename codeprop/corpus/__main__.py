"""``python -m codeprop.corpus``: the corpus pipeline's command line (`codeprop.main`)."""

import sys

from codeprop import main

sys.exit(main.corpus_main())
