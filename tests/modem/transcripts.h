/* SPDX-License-Identifier: MIT */
#pragma once

/* Real nRF91 output quoted in nrf91-at.md (§3.1 %KEYGEN on mfw 1.3.5, §4 %ATTESTTOKEN from Nordic's docs). */

#define KEYGEN_TRANSCRIPT                                                                                          \
        "MIIBCjCBrwIBADAvMS0wKwYDVQQDDCQ1MDUwMzY0Mi0zMjM5LTRmODYtODBjNC0wNjEyMmUyOTk2MjMwWTATBgcqhkjOPQIBBggqhkjOPQMBBwN" \
        "CAARiUcy3JPF23JN4WN6ek_uEF_9BAz79CSTDx0ZQDJSlEz5EfWDTLImxXGa6_VOOonrHQ64p77hcSaZqNweE4kV6oB4wHAYJKoZIhvcNAQkOMQ8" \
        "wDTALBgNVHQ8EBAMCA-gwDAYIKoZIzj0EAwIFAANIADBFAiAyuRZLkBvksmLLZvxY_HnqEkZIFhpHQ9e4tIZDxX8MQwIhAN1APbTPnEA_J0AMOvi" \
        "RVocbGskLr-_-HFuQR1g2owZc.0oRDoQEmoQRBIVhP2dn3hQlQUFA2QjI5T4aAxAYSLimWI0UaAQEAAVgggTi2Q8GE2LqjCUpqPsoiYEjvHtPZ6CE" \
        "bNAry8l3hcuRQgpdUdyqu7lyBKwz6B3EwpVhA6JwXchVqyuJHXDM_qZy91o2d7v7HpMMqOO7oDOACbmJ7iFmjaX10Iw6q_BxZw1bvRigo4lF5F35" \
        "ooIt7z4ohAg"
#define KEYGEN_UUID "50503642-3239-4f86-80c4-06122e299623"
#define KEYGEN_SHA256 "8138b643c184d8baa3094a6a3eca226048ef1ed3d9e8211b340af2f25de172e4"
#define KEYGEN_NONCE "829754772aaeee5c812b0cfa077130a5"

#define ATTEST_TRANSCRIPT                                                                                   \
        "2dn3hQFQUDYxVDkxRPCAIhIbZAFifQNQGv86y_GmR2SiY0wmRsHGVFDT791_BPH8YOWFiyCHND1q.0oRDoQEmoQRBIfZYQGuXwJliinHc" \
        "6xDPruiyjsaXyXZbZVpUuOhHG9YS8L05VuglCcJhMN4EUhWVGpaHgNnHHno6ahi-d5tOeZmAcNY"
#define ATTEST_UUID "50363154-3931-44f0-8022-121b6401627d"
#define ATTEST_FW_UUID "1aff3acb-f1a6-4764-a263-4c2646c1c654"
#define ATTEST_NONCE "d3efdd7f04f1fc60e5858b2087343d6a"
