"""Deterministic generator for the synthetic helpdesk dataset (week 6).

    python generate.py           # rewrite train/validation/test.jsonl beside this file
    python generate.py --check   # regenerate into a temp dir, exit 1 if anything differs
    python generate.py --card    # print the markdown count tables used in README.md

Stdlib only. Every random draw comes from random.Random seeded with SEED and
all iteration is over lists/tuples in a fixed order, so the output is byte for
byte identical on every run, platform and PYTHONHASHSEED.
"""
import argparse
import filecmp
import json
import random
import sys
import tempfile
from pathlib import Path

SEED = 20240606
HERE = Path(__file__).resolve().parent
SPLITS = ("train", "validation", "test")

# -----------------------------------------------------------------------------
# labels, sizes and the priority rule

INTENTS = ("order_status", "payment_failed", "refund_request", "delivery_complaint",
           "product_question", "cancel_order", "account_locked", "change_address",
           "loan_inquiry", "fraud_report")
PRIORITIES = ("low", "medium", "high", "urgent")

# examples per intent and split: deliberately imbalanced (900 / 45 = 20x in train)
COUNTS = {
    "train":      (900, 510, 420, 350, 290, 250, 190, 140, 105, 45),   # 3,200
    "validation": (112, 64, 52, 44, 36, 31, 24, 18, 13, 6),            # 400
    "test":       (112, 64, 52, 44, 36, 31, 24, 18, 13, 6),            # 400
}
# share of Vietnamese messages per intent: ~60% overall, but not flat
VI_SHARE = (0.60, 0.65, 0.55, 0.60, 0.45, 0.55, 0.50, 0.60, 0.85, 0.70)

# the priority rule: a base level per intent, one level up if the message has an urgency cue
BASE_PRIORITY = {
    "order_status": "low", "product_question": "low", "loan_inquiry": "low",
    "refund_request": "medium", "delivery_complaint": "medium",
    "cancel_order": "medium", "change_address": "medium",
    "payment_failed": "high", "account_locked": "high",
    "fraud_report": "urgent",
}
URGENCY_CUES = ("gấp", "khẩn", "ngay lập tức", "càng sớm càng tốt",
                "urgent", "asap", "right now", "immediately", "as soon as possible")
URGENT_SHARE = 0.25   # fraction of messages that get an urgency sentence
CONTACT_SHARE = 0.70  # fraction of PII-free templates that get a PII contact sentence
HOLDOUT_SHARE = 0.25  # fraction of templates per intent x language kept for test only


def has_urgency_cue(message: str) -> bool:
    low = message.lower()
    return any(cue in low for cue in URGENCY_CUES)


def priority_for(intent: str, message: str) -> str:
    level = PRIORITIES.index(BASE_PRIORITY[intent])
    if has_urgency_cue(message):
        level = min(level + 1, len(PRIORITIES) - 1)
    return PRIORITIES[level]

# -----------------------------------------------------------------------------
# message templates: TEMPLATES[intent][lang] -> list; template_id = intent/lang/NN

TEMPLATES = {
    "order_status": {
        "vi": [
            "Đơn hàng {order} của tôi đang ở đâu rồi?",
            "Mình đặt {product} từ ngày {date} mà đến giờ vẫn chưa thấy giao, đơn {order}.",
            "Cho mình hỏi tình trạng đơn {order} với ạ.",
            "Đơn {order} hiển thị 'đang xử lý' đã {days} ngày, khi nào shop gửi hàng?",
            "Làm sao để theo dõi đơn hàng {order}? Mình không thấy mã vận đơn.",
            "Tôi muốn biết khi nào đơn {order} ({product}) được giao đến {city}.",
            "Đơn hàng {order} đã được bàn giao cho đơn vị vận chuyển chưa shop?",
            "Mình đặt {product} hôm {date}, bao giờ thì nhận được hàng?",
            "Trạng thái đơn {order} không cập nhật mấy ngày nay, kiểm tra giúp mình với.",
            "Shop ơi, đơn {order} giao đến {city} mất khoảng bao lâu?",
        ],
        "en": [
            "Where is my order {order}?",
            "I ordered {product} on {date} and it still hasn't arrived. Order number {order}.",
            "Could you check the status of order {order} for me?",
            "My order {order} has been 'processing' for {days} days. When will it ship?",
            "How can I track order {order}? I can't find a tracking number.",
            "When will my {product} be delivered to {city}? The order is {order}.",
            "Has order {order} been handed over to the courier yet?",
            "I placed an order for {product} on {date}. Any update on delivery?",
            "The tracking page for {order} hasn't updated in days. Can you look into it?",
            "How long does shipping to {city} usually take? I'm waiting on order {order}.",
        ],
    },
    "payment_failed": {
        "vi": [
            "Tôi thanh toán đơn {order} bằng thẻ {card} nhưng bị báo lỗi.",
            "Thanh toán {amount} qua {bank} không thành công nhưng tài khoản đã bị trừ tiền.",
            "Mình chuyển khoản {amount} cho đơn {order} mà hệ thống vẫn báo chưa thanh toán.",
            "Thẻ của tôi bị từ chối khi thanh toán {product}, lỗi gì vậy shop?",
            "Giao dịch {amount} ngày {date} bị treo, tiền đã trừ mà đơn chưa xác nhận.",
            "Ví điện tử báo thanh toán thất bại cho đơn {order}, mình thử 3 lần rồi.",
            "Tôi bị trừ tiền hai lần cho cùng một đơn {order}, mỗi lần {amount}.",
            "Không thanh toán được bằng thẻ {bank}, màn hình cứ báo 'giao dịch bị từ chối'.",
            "Mã OTP không về nên giao dịch {amount} bị hủy, giờ phải làm sao?",
            "Thanh toán QR {bank} cho đơn {order} báo lỗi nhưng app ngân hàng đã trừ {amount}.",
        ],
        "en": [
            "I tried to pay for order {order} with card {card} but got an error.",
            "My payment of {amount} via {bank} failed but the money was taken from my account.",
            "I transferred {amount} for order {order} and it still shows unpaid.",
            "My card was declined when I tried to buy {product}. What's wrong?",
            "A transaction of {amount} on {date} is stuck: money deducted, order not confirmed.",
            "The e-wallet payment for order {order} keeps failing. I've tried three times.",
            "I was charged twice for order {order}, {amount} each time.",
            "I can't pay with my {bank} card, it says 'transaction declined'.",
            "I never received the OTP so the {amount} payment was cancelled. What now?",
            "QR payment for {order} showed an error, but my {bank} app deducted {amount}.",
        ],
    },
    "refund_request": {
        "vi": [
            "Tôi muốn hoàn tiền cho đơn {order} vì sản phẩm bị lỗi.",
            "Mình đã trả lại {product} từ ngày {date} mà chưa nhận được tiền hoàn.",
            "Cho mình xin hoàn {amount} về tài khoản {account} tại {bank}.",
            "Sản phẩm nhận được không đúng mô tả, tôi yêu cầu hoàn tiền đơn {order}.",
            "Đơn {order} đã hủy nhưng {amount} vẫn chưa được hoàn lại.",
            "Bao lâu thì tiền hoàn về thẻ {card}? Mình trả hàng {days} ngày rồi.",
            "Tôi nhận {product} bị hỏng, muốn trả hàng và lấy lại {amount}.",
            "Shop hứa hoàn tiền đơn {order} trong 5 ngày mà đã quá hạn.",
            "Vui lòng hoàn tiền vào số tài khoản {account} ({bank}) giúp mình.",
            "Mình bị tính phí ship sai {amount}, xin hoàn lại phần chênh lệch cho đơn {order}.",
        ],
        "en": [
            "I'd like a refund for order {order}, the item is defective.",
            "I returned the {product} on {date} and still haven't got my money back.",
            "Please refund {amount} to my {bank} account {account}.",
            "The item doesn't match the description. I'm requesting a refund for {order}.",
            "Order {order} was cancelled but the {amount} hasn't been refunded.",
            "How long until the refund reaches my card {card}? I returned it {days} days ago.",
            "My {product} arrived damaged. I want to return it and get {amount} back.",
            "You promised a refund for {order} within 5 days and it's overdue.",
            "Can you send the refund to account number {account} at {bank}?",
            "I was overcharged {amount} for shipping on {order}. Please refund the difference.",
        ],
    },
    "delivery_complaint": {
        "vi": [
            "Shipper giao {product} bị móp hộp, đơn {order}.",
            "Đơn {order} báo đã giao nhưng tôi chưa nhận được gì cả.",
            "Hàng giao trễ {days} ngày so với cam kết, tôi rất không hài lòng.",
            "Nhân viên giao hàng thái độ không tốt khi giao đơn {order} ở {city}.",
            "Tôi nhận thiếu hàng, đơn {order} đặt 2 {product} mà chỉ có 1.",
            "Shipper tự ý để hàng ở chỗ bảo vệ mà không gọi cho tôi.",
            "Giao nhầm sản phẩm: tôi đặt {product} nhưng nhận được món khác.",
            "Đơn {order} bị giao đi giao lại 3 lần vẫn không tới {city}.",
            "Kiện hàng bị ướt và rách khi tới tay tôi, đơn {order}.",
            "Shipper đòi thêm {amount} phí giao hàng dù đơn đã miễn phí ship.",
        ],
        "en": [
            "The courier delivered my {product} with a crushed box. Order {order}.",
            "Order {order} says delivered but I never received anything.",
            "My package arrived {days} days later than promised. Very disappointed.",
            "The delivery driver was rude when dropping off order {order} in {city}.",
            "Items missing: I ordered 2 x {product} in {order} and only got 1.",
            "The driver left my parcel with the building guard without calling me.",
            "Wrong item delivered: I ordered {product} and got something else.",
            "Delivery of {order} to {city} has failed three times now.",
            "The parcel for {order} arrived wet and torn.",
            "The courier asked for an extra {amount} even though shipping was free.",
        ],
    },
    "product_question": {
        "vi": [
            "Cho mình hỏi {product} còn hàng không shop?",
            "Sản phẩm {product} bảo hành bao lâu vậy?",
            "Shop có giao {product} đến {city} không ạ?",
            "Mẫu {product} có màu khác không shop?",
            "Giá {amount} của {product} đã bao gồm VAT chưa?",
            "Mình muốn hỏi {product} bên shop có phải hàng chính hãng không?",
            "Mua {product} có hỗ trợ trả góp 0% không ạ?",
            "Kích thước và trọng lượng của {product} là bao nhiêu vậy?",
            "Shop có chương trình giảm giá cho {product} không?",
            "Mua {product} có được tặng kèm phụ kiện gì không?",
        ],
        "en": [
            "Is the {product} in stock?",
            "How long is the warranty on the {product}?",
            "Do you ship the {product} to {city}?",
            "Does the {product} come in other colours?",
            "Does the {amount} price for the {product} include VAT?",
            "Is the {product} you sell genuine?",
            "Can I buy the {product} on a 0% instalment plan?",
            "What are the dimensions and weight of the {product}?",
            "Are there any discounts on the {product} this month?",
            "Does the {product} come with any free accessories?",
        ],
    },
    "cancel_order": {
        "vi": [
            "Tôi muốn hủy đơn hàng {order}.",
            "Mình đặt nhầm {product}, hủy giúp mình đơn {order} nhé.",
            "Cho mình hủy đơn {order}, mình không cần nữa.",
            "Đơn {order} chưa giao thì có hủy được không shop?",
            "Tôi đã tìm được chỗ bán rẻ hơn, xin hủy đơn {order}.",
            "Làm sao để hủy đơn {order} trên app? Mình không thấy nút hủy.",
            "Hủy giúp tôi đơn {order} đặt ngày {date} và hoàn {amount} về ví.",
            "Mình đặt trùng hai đơn, vui lòng hủy đơn {order}.",
            "Tôi đổi ý rồi, không muốn mua {product} nữa, hủy đơn giúp tôi.",
            "Đơn {order} giao quá lâu, tôi muốn hủy luôn.",
        ],
        "en": [
            "I want to cancel order {order}.",
            "I ordered the wrong {product} by mistake, please cancel {order}.",
            "Please cancel my order {order}, I don't need it anymore.",
            "Can I still cancel {order} if it hasn't shipped?",
            "I found it cheaper elsewhere, please cancel order {order}.",
            "How do I cancel {order} in the app? I can't see a cancel button.",
            "Please cancel order {order} from {date} and refund {amount} to my wallet.",
            "I accidentally placed the same order twice, please cancel {order}.",
            "I changed my mind about the {product}, please cancel my order.",
            "Order {order} is taking too long, I'd like to cancel it.",
        ],
    },
    "account_locked": {
        "vi": [
            "Tài khoản của tôi bị khóa sau khi nhập sai mật khẩu.",
            "Mình không đăng nhập được, app báo tài khoản tạm khóa.",
            "Tài khoản đăng ký bằng email {email} bị khóa, mở giúp tôi.",
            "Tôi không nhận được mã OTP nên tài khoản bị khóa.",
            "Tài khoản {acc_id} của tôi bị khóa mà không rõ lý do.",
            "Sau khi đổi điện thoại, tôi không vào được tài khoản nữa.",
            "Ví của tôi bị đóng băng, không rút được {amount}.",
            "App báo 'tài khoản bị khóa do hoạt động bất thường', tôi phải làm gì?",
            "Tôi quên mật khẩu và bị khóa tài khoản, số điện thoại đăng ký là {phone}.",
            "Tài khoản bị khóa từ ngày {date}, tôi cần mở lại để thanh toán đơn {order}.",
        ],
        "en": [
            "My account got locked after I entered the wrong password.",
            "I can't log in, the app says my account is temporarily locked.",
            "My account registered with {email} is locked, please unlock it.",
            "I didn't receive the OTP and now my account is locked.",
            "My account {acc_id} was locked for no reason.",
            "After switching phones I can't get into my account anymore.",
            "My wallet is frozen and I can't withdraw {amount}.",
            "The app says 'account locked due to unusual activity'. What should I do?",
            "I forgot my password and got locked out. My registered phone is {phone}.",
            "My account has been locked since {date} and I need it to pay for {order}.",
        ],
    },
    "change_address": {
        "vi": [
            "Tôi muốn đổi địa chỉ giao hàng cho đơn {order}.",
            "Cho mình đổi địa chỉ nhận hàng sang {district}, {city}.",
            "Đơn {order} mình ghi sai địa chỉ, sửa giúp thành {district}, {city} nhé.",
            "Tôi chuyển nhà rồi, có thể giao đơn {order} đến {city} được không?",
            "Làm sao để cập nhật địa chỉ giao hàng trong tài khoản?",
            "Đổi giúp mình địa chỉ đơn {order} sang địa chỉ công ty ở {district}.",
            "Đơn {order} đã gửi đi rồi thì còn đổi địa chỉ được không?",
            "Mình muốn nhận hàng ở {city} thay vì địa chỉ cũ.",
            "Vui lòng đổi người nhận và địa chỉ cho đơn {order}, giao đến {district}.",
            "Tôi chọn nhầm tỉnh thành khi đặt {product}, cần sửa sang {city}.",
        ],
        "en": [
            "I want to change the delivery address for order {order}.",
            "Please change my shipping address to {district}, {city}.",
            "I entered the wrong address on {order}, please update it to {district}, {city}.",
            "I've moved. Can order {order} be delivered to {city} instead?",
            "How do I update the delivery address in my account?",
            "Please ship order {order} to my office in {district} instead.",
            "Order {order} has already shipped. Can I still change the address?",
            "I'd like to receive my parcel in {city} instead of my old address.",
            "Please change the recipient and address on {order} to {district}.",
            "I picked the wrong province when ordering the {product}, it should be {city}.",
        ],
    },
    "loan_inquiry": {
        "vi": [
            "Cho tôi hỏi điều kiện vay tiêu dùng {loan_amount}.",
            "Lãi suất vay trả góp {months} tháng là bao nhiêu?",
            "Tôi muốn vay {loan_amount} để mua {product}, cần giấy tờ gì?",
            "Hồ sơ vay của tôi nộp từ ngày {date} đến giờ đã được duyệt chưa?",
            "Tôi có thể trả trước hạn khoản vay không, có mất phí không?",
            "Thu nhập 10 triệu/tháng có vay được {loan_amount} không?",
            "Khoản vay {acc_id} của tôi kỳ này phải trả bao nhiêu?",
            "Mình muốn giải ngân khoản vay vào tài khoản {account} tại {bank}.",
            "Vay {loan_amount} trong {months} tháng thì mỗi tháng trả khoảng bao nhiêu?",
            "Bên mình có gói mua trước trả sau cho sinh viên không?",
        ],
        "en": [
            "What are the requirements for a {loan_amount} personal loan?",
            "What's the interest rate on a {months}-month instalment loan?",
            "I want to borrow {loan_amount} to buy the {product}. What documents do I need?",
            "I submitted a loan application on {date}. Has it been approved?",
            "Can I repay my loan early? Is there a fee?",
            "With an income of 10 million VND a month, can I borrow {loan_amount}?",
            "How much do I owe this month on loan {acc_id}?",
            "Please disburse my loan to account {account} at {bank}.",
            "If I borrow {loan_amount} over {months} months, what's the monthly payment?",
            "Do you offer buy-now-pay-later plans for students?",
        ],
    },
    "fraud_report": {
        "vi": [
            "Tôi phát hiện giao dịch {amount} lạ trên thẻ {card} mà tôi không thực hiện.",
            "Có người gọi tự xưng là nhân viên shop và đòi mã OTP của tôi.",
            "Tài khoản {acc_id} của tôi bị đăng nhập từ thiết bị lạ và đặt đơn {order}.",
            "Tôi nhận được tin nhắn giả mạo yêu cầu chuyển {amount} vào tài khoản {account}.",
            "Thẻ {card} bị trừ tiền nhiều lần ở những nơi tôi chưa từng mua.",
            "Email {email} của tôi nhận thư lừa đảo mạo danh ngân hàng {bank}.",
            "Ai đó đã đổi số điện thoại trong tài khoản của tôi thành {phone}.",
            "Tôi bị lừa chuyển khoản {amount} cho một shop giả mạo, giúp tôi với.",
            "Có đơn {order} lạ trong tài khoản, tôi không hề đặt.",
            "Tôi nghi thẻ bị đánh cắp thông tin, vừa có giao dịch {amount} ngày {date}.",
        ],
        "en": [
            "There's a {amount} transaction on my card {card} that I didn't make.",
            "Someone called pretending to be your staff and asked for my OTP.",
            "My account {acc_id} was accessed from an unknown device and order {order} was placed.",
            "I got a fake text asking me to transfer {amount} to account {account}.",
            "My card {card} was charged several times at places I've never shopped.",
            "My email {email} received a phishing message impersonating {bank}.",
            "Someone changed the phone number on my account to {phone}.",
            "I was tricked into transferring {amount} to a fake shop, please help.",
            "There's an order {order} in my account that I never placed.",
            "I think my card details were stolen, there was a {amount} charge on {date}.",
        ],
    },
}

# -----------------------------------------------------------------------------
# replies: the output style. Shared across splits; "{order}" variants are used
# only when the message has an order code. Never any PII.

REPLIES = {
    "order_status": {
        "vi": ["Cảm ơn quý khách đã liên hệ. Chúng tôi đang kiểm tra tình trạng đơn hàng {order} và sẽ cập nhật trong thời gian sớm nhất.",
               "Chúng tôi đã ghi nhận yêu cầu. Quý khách có thể theo dõi đơn hàng trong mục 'Đơn mua' trên ứng dụng.",
               "Dạ, đơn hàng của quý khách đang được xử lý. Đơn vị vận chuyển sẽ liên hệ trước khi giao."],
        "en": ["Thanks for reaching out. We're checking the status of order {order} and will update you shortly.",
               "We've logged your request. You can track your order under 'My orders' in the app.",
               "Your order is being processed and the courier will contact you before delivery."],
    },
    "payment_failed": {
        "vi": ["Rất tiếc vì sự cố thanh toán. Chúng tôi đang đối soát giao dịch của đơn {order}; nếu đã bị trừ tiền, khoản này sẽ được hoàn trong 3–5 ngày làm việc.",
               "Chúng tôi đã ghi nhận lỗi thanh toán. Quý khách vui lòng không thực hiện lại giao dịch trong lúc chúng tôi kiểm tra với ngân hàng.",
               "Xin lỗi quý khách vì sự bất tiện. Bộ phận thanh toán đang xử lý và sẽ phản hồi trong vòng 24 giờ."],
        "en": ["Sorry about the payment issue. We're reconciling the transaction for order {order}; if you were charged, it will be refunded within 3–5 business days.",
               "We've logged the payment error. Please don't retry the payment while we check with the bank.",
               "Sorry for the inconvenience. Our payments team is on it and will get back to you within 24 hours."],
    },
    "refund_request": {
        "vi": ["Chúng tôi đã tiếp nhận yêu cầu hoàn tiền cho đơn {order}. Tiền sẽ được hoàn về phương thức thanh toán ban đầu trong 5–7 ngày làm việc.",
               "Cảm ơn quý khách. Yêu cầu hoàn tiền đang được xem xét, chúng tôi sẽ thông báo kết quả trong vòng 48 giờ.",
               "Rất tiếc vì trải nghiệm chưa tốt. Bộ phận đổi trả sẽ liên hệ để hướng dẫn quý khách các bước hoàn tiền."],
        "en": ["We've received your refund request for order {order}. The money will go back to your original payment method within 5–7 business days.",
               "Thank you. Your refund request is under review and we'll let you know the outcome within 48 hours.",
               "Sorry this didn't work out. Our returns team will contact you with the next steps for your refund."],
    },
    "delivery_complaint": {
        "vi": ["Chúng tôi thành thật xin lỗi về trải nghiệm giao hàng của đơn {order}. Khiếu nại đã được chuyển đến đơn vị vận chuyển để xử lý.",
               "Xin lỗi quý khách vì sự cố này. Chúng tôi đã ghi nhận phản ánh và sẽ liên hệ lại trong vòng 24 giờ.",
               "Cảm ơn quý khách đã phản hồi. Chúng tôi sẽ làm việc với bên giao hàng và đề xuất phương án bồi hoàn phù hợp."],
        "en": ["We sincerely apologise for the delivery experience with order {order}. Your complaint has been passed to the courier for action.",
               "Sorry about this. We've logged your complaint and will get back to you within 24 hours.",
               "Thank you for letting us know. We'll follow up with the courier and offer a suitable remedy."],
    },
    "product_question": {
        "vi": ["Cảm ơn quý khách đã quan tâm. Thông tin chi tiết có trong phần mô tả sản phẩm; nhân viên tư vấn sẽ trả lời thêm cho quý khách.",
               "Dạ, chúng tôi sẽ kiểm tra và phản hồi thông tin sản phẩm cho quý khách trong thời gian sớm nhất.",
               "Cảm ơn câu hỏi của quý khách. Bộ phận tư vấn sẽ gửi thông tin về tồn kho, giá và bảo hành của sản phẩm."],
        "en": ["Thanks for your interest. Full details are in the product description, and our sales team will follow up with anything else.",
               "We'll check and get back to you with the product information shortly.",
               "Thanks for asking. Our sales team will send you details on stock, price and warranty."],
    },
    "cancel_order": {
        "vi": ["Chúng tôi đã nhận yêu cầu hủy đơn {order}. Nếu đơn chưa được bàn giao cho vận chuyển, việc hủy sẽ hoàn tất trong vòng 24 giờ.",
               "Dạ, yêu cầu hủy đơn đã được ghi nhận. Nếu quý khách đã thanh toán, tiền sẽ được hoàn trong 3–5 ngày làm việc.",
               "Cảm ơn quý khách. Chúng tôi đang kiểm tra trạng thái đơn hàng để tiến hành hủy và sẽ xác nhận qua ứng dụng."],
        "en": ["We've received your request to cancel order {order}. If it hasn't been handed to the courier yet, it will be cancelled within 24 hours.",
               "Your cancellation request has been logged. If you've already paid, the refund will arrive within 3–5 business days.",
               "Thank you. We're checking the order status to process the cancellation and will confirm in the app."],
    },
    "account_locked": {
        "vi": ["Vì lý do bảo mật, tài khoản của quý khách đang tạm khóa. Quý khách vui lòng xác minh danh tính trong ứng dụng để mở khóa.",
               "Chúng tôi đã ghi nhận yêu cầu mở khóa. Bộ phận bảo mật sẽ liên hệ để xác minh với quý khách trong vòng 2 giờ.",
               "Xin lỗi vì sự bất tiện. Quý khách vui lòng dùng chức năng 'Quên mật khẩu' hoặc chờ bộ phận hỗ trợ xác minh và mở khóa."],
        "en": ["For security reasons your account has been temporarily locked. Please verify your identity in the app to unlock it.",
               "We've logged your unlock request. Our security team will contact you to verify your identity within 2 hours.",
               "Sorry for the trouble. Please use 'Forgot password' or wait for our team to verify and unlock your account."],
    },
    "change_address": {
        "vi": ["Chúng tôi đã nhận yêu cầu đổi địa chỉ cho đơn {order}. Nếu đơn chưa rời kho, địa chỉ mới sẽ được cập nhật trong hôm nay.",
               "Dạ, quý khách có thể cập nhật địa chỉ trong mục 'Sổ địa chỉ' của ứng dụng; với đơn đang giao, chúng tôi sẽ liên hệ bên vận chuyển.",
               "Cảm ơn quý khách. Chúng tôi đang kiểm tra khả năng đổi địa chỉ và sẽ xác nhận lại sớm."],
        "en": ["We've received your address change request for order {order}. If it hasn't left the warehouse, the new address will apply today.",
               "You can update your address under 'Address book' in the app; for orders in transit we'll contact the courier for you.",
               "Thank you. We're checking whether the address can still be changed and will confirm shortly."],
    },
    "loan_inquiry": {
        "vi": ["Cảm ơn quý khách quan tâm đến sản phẩm vay. Chuyên viên tư vấn sẽ liên hệ để thông tin về lãi suất, hạn mức và hồ sơ cần thiết.",
               "Dạ, quý khách có thể xem biểu phí và lãi suất trong mục 'Khoản vay' trên ứng dụng; chúng tôi sẽ gửi thêm thông tin chi tiết.",
               "Chúng tôi đã ghi nhận yêu cầu. Hồ sơ vay thường được xét duyệt trong 1–3 ngày làm việc."],
        "en": ["Thank you for your interest in our loans. An advisor will contact you about rates, limits and the documents required.",
               "You can see fees and interest rates under 'Loans' in the app, and we'll send you more details.",
               "We've logged your request. Loan applications are usually reviewed within 1–3 business days."],
    },
    "fraud_report": {
        "vi": ["Cảm ơn quý khách đã báo cáo. Chúng tôi đã tạm khóa tài khoản và thẻ liên quan; bộ phận chống gian lận sẽ liên hệ quý khách.",
               "Quý khách tuyệt đối không chia sẻ mã OTP cho bất kỳ ai. Trường hợp đã được chuyển cho bộ phận chống gian lận.",
               "Chúng tôi rất tiếc về sự việc. Giao dịch đáng ngờ đang được điều tra và quý khách sẽ nhận cập nhật trong vòng 24 giờ."],
        "en": ["Thank you for reporting this. We've temporarily blocked the affected account and card; our fraud team will contact you.",
               "Please never share your OTP with anyone. Your case has been escalated to our fraud team.",
               "We're sorry this happened. The suspicious activity is under investigation and you'll get an update within 24 hours."],
    },
}

# -----------------------------------------------------------------------------
# framing sentences around the message body

PREFIXES = {
    "vi": ["Chào shop.", "Xin chào.", "Chào bạn!", "Shop ơi.", "Kính gửi bộ phận chăm sóc khách hàng.", "Dạ em chào anh chị."],
    "en": ["Hi.", "Hello.", "Hi there!", "Good morning.", "Hello support team.", "Hey!"],
}
SUFFIXES = {
    "vi": ["Cảm ơn shop.", "Mong nhận được phản hồi.", "Cảm ơn bạn nhiều!", "Xin cảm ơn.", "Mình chờ tin nhé."],
    "en": ["Thanks.", "Thank you!", "Thanks in advance.", "Appreciate your help.", "Best regards."],
}
URGENCY = {
    "vi": ["Việc này rất gấp!", "Mình cần xử lý gấp.", "Khẩn cấp, mong hỗ trợ ngay lập tức.",
           "Vui lòng xử lý càng sớm càng tốt.", "Cần hỗ trợ khẩn!"],
    "en": ["This is urgent!", "Please help ASAP.", "I need this fixed right now.",
           "Urgent: please respond immediately.", "Please handle this as soon as possible."],
}
CONTACT = {  # PII-bearing sentences added to templates that carry no PII of their own
    "vi": ["Email của mình là {email}.", "SĐT liên hệ: {phone}.", "Số điện thoại của tôi: {phone}.",
           "Tài khoản đăng ký: {email}.", "Số tài khoản của tôi là {account}.", "Mã khách hàng {acc_id}.",
           "Liên hệ mình qua {phone} hoặc {email}.", "STK {account} ({bank})."],
    "en": ["My email is {email}.", "You can reach me at {phone}.", "My phone number is {phone}.",
           "Registered email: {email}.", "Account number: {account}.", "My customer ID is {acc_id}.",
           "Contact me on {phone} or {email}.", "Bank account {account} ({bank})."],
}
PII_SLOTS = ("{email}", "{phone}", "{account}", "{acc_id}", "{card}")

# -----------------------------------------------------------------------------
# slot values

PRODUCTS = {
    "vi": ["iPhone 15", "Samsung Galaxy A55", "tai nghe Bluetooth Sony", "nồi chiên không dầu Philips",
           "máy lọc không khí Xiaomi", "áo khoác gió", "giày chạy bộ Nike", "laptop ASUS Vivobook",
           "bàn phím cơ", "sữa rửa mặt Cetaphil", "máy hút bụi cầm tay", "bình giữ nhiệt Lock&Lock"],
    "en": ["iPhone 15", "Samsung Galaxy A55", "Sony Bluetooth headphones", "Philips air fryer",
           "Xiaomi air purifier", "windbreaker jacket", "Nike running shoes", "ASUS Vivobook laptop",
           "mechanical keyboard", "Cetaphil face wash", "handheld vacuum", "Lock&Lock flask"],
}
BANKS = ["Vietcombank", "Techcombank", "MB Bank", "VPBank", "BIDV", "ACB", "TPBank", "Sacombank", "VietinBank"]
LOCATIONS = [  # (district vi, city vi, district en, city en)
    ("Quận 1", "TP.HCM", "District 1", "Ho Chi Minh City"),
    ("Quận Bình Thạnh", "TP.HCM", "Binh Thanh District", "Ho Chi Minh City"),
    ("TP. Thủ Đức", "TP.HCM", "Thu Duc City", "Ho Chi Minh City"),
    ("Quận Cầu Giấy", "Hà Nội", "Cau Giay District", "Hanoi"),
    ("Quận Hoàn Kiếm", "Hà Nội", "Hoan Kiem District", "Hanoi"),
    ("Quận Hải Châu", "Đà Nẵng", "Hai Chau District", "Da Nang"),
    ("Quận Ninh Kiều", "Cần Thơ", "Ninh Kieu District", "Can Tho"),
    ("Quận Lê Chân", "Hải Phòng", "Le Chan District", "Hai Phong"),
    ("phường Vĩnh Hải", "Nha Trang", "Vinh Hai Ward", "Nha Trang"),
    ("phường Phú Hội", "Huế", "Phu Hoi Ward", "Hue"),
]
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July",
             "August", "September", "October", "November", "December"]
NAMES_VI = ["nguyen.van.an", "tran.thi.bich", "le.hoang.nam", "pham.minh.tuan", "hoang.thu.ha",
            "vu.quoc.bao", "do.thanh.huong", "bui.ngoc.lan", "dang.van.hung", "ngo.thi.mai"]
NAMES_EN = ["john.smith", "emily.nguyen", "david.tran", "sarah.le", "michael.pham", "anna.ho",
            "james.vo", "linda.dang"]
DOMAINS = ["gmail.com", "yahoo.com.vn", "outlook.com", "example.com", "hotmail.com", "example.vn"]
PHONE_PREFIXES = ["090", "091", "093", "094", "097", "098", "086", "088", "032", "035", "070", "077", "081", "085"]


def vnd(n: int, lang: str, rng: random.Random) -> str:
    """An amount in VND, written the way each language usually writes it."""
    if lang == "vi":
        s = f"{n:,}".replace(",", ".")
        return rng.choice([s + "đ", s + " đồng", s + " VND"])
    return rng.choice([f"{n:,} VND", f"VND {n:,}", f"{n:,}đ"])


def fake_phone(rng: random.Random) -> str:
    p = rng.choice(PHONE_PREFIXES) + "".join(str(rng.randrange(10)) for _ in range(7))
    fmt = rng.randrange(5)
    if fmt == 0:
        return f"{p[:4]} {p[4:7]} {p[7:]}"      # 0912 345 678
    if fmt == 1:
        return f"{p[:4]}-{p[4:7]}-{p[7:]}"      # 0912-345-678
    if fmt == 2:
        return f"+84 {p[1:]}"                   # +84 912345678
    if fmt == 3:
        return f"+84{p[1:]}"                    # +84912345678
    return p                                    # 0912345678


def fake_card(rng: random.Random) -> str:
    digits = rng.choice("45") + "".join(str(rng.randrange(10)) for _ in range(15))
    sep = rng.choice([" ", " ", "-", ""])
    return sep.join(digits[i:i + 4] for i in range(0, 16, 4))


def fake_account(rng: random.Random) -> str:
    # bank account numbers: 10-14 digits, never starting with 0 (so never phone-shaped)
    n = rng.randrange(10, 15)
    return str(rng.randrange(1, 10)) + "".join(str(rng.randrange(10)) for _ in range(n - 1))


def fake_email(lang: str, rng: random.Random) -> str:
    name = rng.choice(NAMES_VI if lang == "vi" or rng.random() < 0.3 else NAMES_EN)
    if rng.random() < 0.6:
        name += str(rng.randrange(80, 100) if rng.random() < 0.5 else rng.randrange(1, 100))
    return f"{name}@{rng.choice(DOMAINS)}"


def draw_slots(lang: str, rng: random.Random) -> dict:
    """Values for every slot. All are drawn every time, in a fixed order, so the
    random stream does not depend on which slots a template happens to use."""
    day, month = rng.randrange(1, 29), rng.randrange(1, 13)
    loc = rng.choice(LOCATIONS)
    loan = rng.choice([10, 20, 30, 50, 80, 100, 150, 200])
    return {
        "order": "DH" + str(rng.randrange(10 ** 5, 10 ** 8)).zfill(6),
        "product": rng.choice(PRODUCTS[lang]),
        "amount": vnd(rng.randrange(50, 20000) * 1000, lang, rng),
        "date": f"{day}/{month}" if lang == "vi" else rng.choice([f"{MONTHS_EN[month - 1]} {day}", f"{day} {MONTHS_EN[month - 1]}"]),
        "days": rng.randrange(2, 15),
        "bank": rng.choice(BANKS),
        "district": loc[0] if lang == "vi" else loc[2],
        "city": loc[1] if lang == "vi" else loc[3],
        "loan_amount": f"{loan} triệu" + rng.choice(["", " đồng"]) if lang == "vi" else f"{loan} million VND",
        "months": rng.choice([6, 9, 12, 18, 24, 36]),
        "email": fake_email(lang, rng),
        "phone": fake_phone(rng),
        "account": fake_account(rng),
        "acc_id": "ACC-" + str(rng.randrange(10 ** 7)).zfill(8),
        "card": fake_card(rng),
    }

# -----------------------------------------------------------------------------
# assembling examples


def split_templates(rng: random.Random) -> dict:
    """(intent, lang) -> {"test": [idx...], "train": [idx...]}. ~25% held out, at least 2."""
    out = {}
    for intent in INTENTS:
        for lang in ("vi", "en"):
            n = len(TEMPLATES[intent][lang])
            k = max(2, int(n * HOLDOUT_SHARE))  # 10 templates -> 2 held out
            held = sorted(rng.sample(range(n), k))
            out[(intent, lang)] = {"test": held, "train": [i for i in range(n) if i not in held]}
    return out


def make_example(intent: str, lang: str, t_idx: int, rng: random.Random) -> dict:
    template = TEMPLATES[intent][lang][t_idx]
    slots = draw_slots(lang, rng)
    body = template.format(**slots)
    # optional framing; the draws happen unconditionally to keep the stream simple
    prefix, suffix = rng.choice(PREFIXES[lang]), rng.choice(SUFFIXES[lang])
    use_prefix, use_suffix = rng.random() < 0.5, rng.random() < 0.4
    contact = rng.choice(CONTACT[lang]).format(**slots)
    use_contact = not any(s in template for s in PII_SLOTS) and rng.random() < CONTACT_SHARE
    cue = rng.choice(URGENCY[lang])
    use_cue, cue_first = rng.random() < URGENT_SHARE, rng.random() < 0.3
    parts = [body]
    if use_contact:
        parts.append(contact)
    if use_cue:
        parts.insert(0, cue) if cue_first else parts.append(cue)
    if use_prefix:
        parts.insert(0, prefix)
    if use_suffix:
        parts.append(suffix)
    message = " ".join(parts)
    # the priority label must be readable from the text: a cue exactly when we added one
    assert has_urgency_cue(message) == use_cue, message
    replies = [r for r in REPLIES[intent][lang] if "{order}" in template or "{order}" not in r]
    reply = rng.choice(replies).format(order=slots["order"])
    return {
        "language": lang, "intent": intent, "priority": priority_for(intent, message),
        "message": message, "reply": reply, "template_id": f"{intent}/{lang}/{t_idx:02d}",
    }


def build_splits() -> dict:
    """split -> list of records (dicts), fully deterministic."""
    held = split_templates(random.Random(SEED))
    seen = set()  # membership only (never iterated): no message text repeats across splits
    splits = {}
    for s_idx, split in enumerate(SPLITS):
        rng = random.Random(SEED * 10 + s_idx + 1)
        pool = "test" if split == "test" else "train"
        records = []
        for intent, n in zip(INTENTS, COUNTS[split]):
            n_vi = round(n * VI_SHARE[INTENTS.index(intent)])
            for lang, m in (("vi", n_vi), ("en", n - n_vi)):
                for _ in range(m):
                    while True:
                        ex = make_example(intent, lang, rng.choice(held[(intent, lang)][pool]), rng)
                        if ex["message"] not in seen:
                            break
                    seen.add(ex["message"])
                    records.append(ex)
        rng.shuffle(records)
        for i, ex in enumerate(records, 1):
            ex["id"] = f"{split}-{i:05d}"
        splits[split] = records
    return splits


def write_splits(out_dir: Path) -> None:
    out_dir = Path(out_dir)
    for split, records in build_splits().items():
        with open(out_dir / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for ex in records:
                f.write(json.dumps(ex, ensure_ascii=False, sort_keys=True) + "\n")

# -----------------------------------------------------------------------------
# data card tables


def card(splits: dict) -> str:
    def table(header, rows):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        return "\n".join(lines)

    def count(split, **where):
        return sum(all(ex[k] == v for k, v in where.items()) for ex in splits[split])

    out = ["### Per split and language\n", table(
        ["split", "total", "vi", "en"],
        [[s, len(splits[s]), count(s, language="vi"), count(s, language="en")] for s in SPLITS])]
    out += ["\n### Per intent (base priority in brackets)\n", table(
        ["intent", "train", "train vi", "train en", "validation", "test"],
        [[f"{i} ({BASE_PRIORITY[i]})", count("train", intent=i), count("train", intent=i, language="vi"),
          count("train", intent=i, language="en"), count("validation", intent=i), count("test", intent=i)]
         for i in INTENTS])]
    out += ["\n### Per priority\n", table(
        ["priority"] + list(SPLITS), [[p] + [count(s, priority=p) for s in SPLITS] for p in PRIORITIES])]
    n_tpl = [(len(h["train"]), len(h["test"])) for h in split_templates(random.Random(SEED)).values()]
    out.append(f"\nMessage templates: {sum(a + b for a, b in n_tpl)} in total, "
               f"{sum(a for a, _ in n_tpl)} for train/validation and {sum(b for _, b in n_tpl)} held out for test.")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="verify the committed files are reproduced exactly")
    ap.add_argument("--card", action="store_true", help="print the markdown count tables")
    args = ap.parse_args()
    if args.card:
        print(card(build_splits()))
        return 0
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            write_splits(Path(tmp))
            bad = [s for s in SPLITS if not (HERE / f"{s}.jsonl").exists()
                   or not filecmp.cmp(Path(tmp) / f"{s}.jsonl", HERE / f"{s}.jsonl", shallow=False)]
        if bad:
            print("differs from the generator output: " + ", ".join(f"{s}.jsonl" for s in bad), file=sys.stderr)
            return 1
        print("ok: " + ", ".join(f"{s}.jsonl" for s in SPLITS) + " match the generator")
        return 0
    write_splits(HERE)
    print(f"wrote {', '.join(f'{s}.jsonl' for s in SPLITS)} to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
