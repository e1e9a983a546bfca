from spp_feedback.cli import main

main()
