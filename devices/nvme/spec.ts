// NVMe 1.4 constants the controller model uses: register offsets, admin opcodes, feature and log page
// identifiers, and completion status codes packed as SCT << 8 | SC (the same packing as native/nvme).

// Controller registers (§3.1)
export const REG_CAP = 0x00;
export const REG_VS = 0x08;
export const REG_INTMS = 0x0c;
export const REG_INTMC = 0x10;
export const REG_CC = 0x14;
export const REG_CSTS = 0x1c;
export const REG_NSSR = 0x20;
export const REG_AQA = 0x24;
export const REG_ASQ = 0x28;
export const REG_ACQ = 0x30;
/** Doorbells start here; with CAP.DSTRD = 0 queue y's SQ tail is at 0x1000 + 8y and its CQ head at + 4. */
export const DOORBELL_BASE = 0x1000;
/** Version 1.4.0 */
export const NVME_VERSION = 0x00010400;

export const CC_EN = 1 << 0;
export const CSTS_RDY = 1 << 0;
export const CSTS_CFS = 1 << 1;
export const CSTS_SHST_COMPLETE = 2 << 2;

// Admin command set (Figure 139)
export const ADM_DELETE_SQ = 0x00;
export const ADM_CREATE_SQ = 0x01;
export const ADM_GET_LOG_PAGE = 0x02;
export const ADM_DELETE_CQ = 0x04;
export const ADM_CREATE_CQ = 0x05;
export const ADM_IDENTIFY = 0x06;
export const ADM_ABORT = 0x08;
export const ADM_SET_FEATURES = 0x09;
export const ADM_GET_FEATURES = 0x0a;
export const ADM_ASYNC_EVENT_REQUEST = 0x0c;
export const ADM_DOORBELL_BUFFER_CONFIG = 0x7c;
export const ADM_FORMAT_NVM = 0x80;

// Identify CNS values (Figure 244)
export const CNS_NAMESPACE = 0x00;
export const CNS_CONTROLLER = 0x01;
export const CNS_ACTIVE_NS_LIST = 0x02;
export const CNS_NS_DESCRIPTORS = 0x03;

// Feature identifiers (Figure 271)
export const FEAT_ARBITRATION = 0x01;
export const FEAT_POWER_MANAGEMENT = 0x02;
export const FEAT_TEMPERATURE_THRESHOLD = 0x04;
export const FEAT_ERROR_RECOVERY = 0x05;
export const FEAT_VOLATILE_WRITE_CACHE = 0x06;
export const FEAT_NUMBER_OF_QUEUES = 0x07;
export const FEAT_INTERRUPT_COALESCING = 0x08;
export const FEAT_INTERRUPT_VECTOR_CONFIG = 0x09;
export const FEAT_WRITE_ATOMICITY = 0x0a;
export const FEAT_ASYNC_EVENT_CONFIG = 0x0b;

// Log pages (Figure 191)
export const LOG_ERROR = 0x01;
export const LOG_SMART = 0x02;
export const LOG_FIRMWARE_SLOT = 0x03;
export const LOG_CHANGED_NS_LIST = 0x04;

// Asynchronous event types (Figure 146)
export const AER_TYPE_ERROR = 0;
export const AER_TYPE_SMART = 1;
export const AER_TYPE_NOTICE = 2;
/** Error information: write to an invalid doorbell register / invalid doorbell write value */
export const AER_INFO_INVALID_DB_REGISTER = 0;
export const AER_INFO_INVALID_DB_VALUE = 1;
/** SMART: temperature threshold; Notice: namespace attribute changed */
export const AER_INFO_TEMPERATURE = 1;
export const AER_INFO_NS_ATTR_CHANGED = 0;

// Status codes
export const SC_SUCCESS = 0x000;
export const SC_INVALID_OPCODE = 0x001;
export const SC_INVALID_FIELD = 0x002;
export const SC_DATA_TRANSFER_ERROR = 0x004;
export const SC_INTERNAL_ERROR = 0x006;
export const SC_ABORT_SQ_DELETED = 0x008;
export const SC_INVALID_NAMESPACE = 0x00b;
export const SC_CQ_INVALID = 0x100;
export const SC_INVALID_QID = 0x101;
export const SC_INVALID_QSIZE = 0x102;
export const SC_ASYNC_EVENT_LIMIT = 0x105;
export const SC_INVALID_FORMAT = 0x10a;
export const SC_INVALID_VECTOR = 0x108;
export const SC_INVALID_LOG_PAGE = 0x109;
export const SC_INVALID_QUEUE_DELETION = 0x10c;
export const SC_FEATURE_NOT_SAVEABLE = 0x10d;
export const SC_FEATURE_NOT_CHANGEABLE = 0x10e;

/** The SQE layout: dword `i` of a 64-byte command. */
export const sqeDword = (sqe: DataView, i: number): number => sqe.getUint32(4 * i, true);
