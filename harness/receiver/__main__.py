from harness.receiver.standalone import main

main()
