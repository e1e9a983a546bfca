from spp_sites.cli import main

main()
