from deeprc_hopfield.cli import main

raise SystemExit(main())
