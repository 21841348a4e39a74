from stream_scorer.cli import main

raise SystemExit(main())
