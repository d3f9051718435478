from tierline.streams.cli import main

main()
