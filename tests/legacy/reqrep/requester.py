""" A main-mode requester written as for service_framework 0.0.12 """

from service_framework.utils.logging_utils import get_logger

LOG = get_logger()


def main(to_send, config):
    """
    Sends `num_req_to_send` requests (a bare `num_req_to_send 10` after the flags)
    and prints each reply.
    """
    num_replies = 0
    for request_num in range(config['num_req_to_send']):
        payload = {'echo': config['echo_text'], 'request_num': request_num}
        LOG.info('Sending request: %s', payload)
        response = to_send('connection', 'request', payload)
        LOG.info('Got response: %s', response)
        if response['request_num'] != request_num:
            raise RuntimeError(f'reply to {response["request_num"]}, sent {request_num}')
        num_replies += 1
        print(f"reply {request_num}: {response['echo']}", flush=True)
    print(f'got {num_replies} replies', flush=True)


connection_models = {
    'out': {
        'request': {
            'connection_type': 'requester',
            'required_arguments': {
                'echo': str,
                'request_num': int,
            },
            'required_return_arguments': {
                'echo': str,
                'request_num': int,
                'reply_count': int,
            },
        }
    }
}

config_model = {
    'required': {
        'num_req_to_send': int,
        'echo_text': str,
    },
}
