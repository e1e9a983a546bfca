from spp_indicators.cli import main

main()
