from spp_labelling.cli import main

main()
