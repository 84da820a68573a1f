/** Sends sfsync a signed change event for the Accounts of each committed insert, update, delete and undelete. */
trigger SfsyncAccountEvents on Account (after insert, after update, after delete, after undelete) {
    SfsyncEvents.fromTrigger('Account', Trigger.operationType, Trigger.isDelete ? Trigger.oldMap.keySet() : Trigger.newMap.keySet());
}
