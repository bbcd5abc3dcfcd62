from coordcore.cli import main

raise SystemExit(main())
