/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * MESSAGE_ID= values of the few journal records operators alert on.  Each is
 * explained in systemd/nrfcloud-gateway.catalog (journalctl -x shows it).
 * Filter with e.g.: journalctl MESSAGE_ID=0f0c96ed191b4c4ba850e18eaa5eae06
 */
#define MESSAGE_ID_CLOUD_CONNECTED "0a082261c7f1405783557cdc824393b7"
#define MESSAGE_ID_CLOUD_LOST "0f0c96ed191b4c4ba850e18eaa5eae06"
#define MESSAGE_ID_MODEM_READY "f8dc43aa7bcc4c909d2c0c4a1e921ae1"
#define MESSAGE_ID_MODEM_LOST "209fa731139747cc820b02fac91444fe"
#define MESSAGE_ID_MODEM_CREDENTIALS_MISSING "bc38ec61e26e4de4a174f09cb7b135d6"
#define MESSAGE_ID_DEVICE_CONNECTED "02c51822b93a47fe8b6cf785c5b0f198"
#define MESSAGE_ID_DEVICE_DISCONNECTED "4f59864e658a47db9280f200c0556b42"
/* FOTA job for the gateway: started, succeeded, failed (or rejected). */
#define MESSAGE_ID_FOTA_STARTED "3d1f6c0b8a2e4f4c9b7e5a61c2d8f903"
#define MESSAGE_ID_FOTA_SUCCEEDED "96b53e756fb84faaa3e2adc3a6225b5c"
#define MESSAGE_ID_FOTA_FAILED "c47a2e9d15b34e0f8d6a3b9e7f1c5a24"
/* FOTA job for a BLE device behind the gateway: started, succeeded, failed (or rejected). */
#define MESSAGE_ID_BLE_FOTA_STARTED "174ddbace8c140fb9caaefa102984b41"
#define MESSAGE_ID_BLE_FOTA_SUCCEEDED "fd2ecdc0129c483499752215644d571c"
#define MESSAGE_ID_BLE_FOTA_FAILED "ca2a905202264fda9be09deebea672b5"
#define MESSAGE_ID_GATEWAY_UNPAIRED "e294462c09184318b0bcb1ade64fcfad"
#define MESSAGE_ID_SHADOW_TOPIC_REFUSED "bbcf813f834741b6969be001dfe9bf68"
/* The gateway's location from nRF Cloud's ground fix (docs/location.md). */
#define MESSAGE_ID_LOCATION "3e6a235b0bc14fdeba9803b3447fe71c"
/* The publish budget ([Cloud] MaxPublishRate=) held more than a second's worth back; that backlog was sent. */
#define MESSAGE_ID_PUBLISH_BUDGET_SATURATED "dfa53863fd5a40058bbf6a013230ae7c"
#define MESSAGE_ID_PUBLISH_BUDGET_CLEARED "c9976e77663b45349ebde4fa8c9857e8"
