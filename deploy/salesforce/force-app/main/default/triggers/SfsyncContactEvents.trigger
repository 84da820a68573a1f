/** Sends sfsync a signed change event for the Contacts of each committed insert, update, delete and undelete. */
trigger SfsyncContactEvents on Contact (after insert, after update, after delete, after undelete) {
    SfsyncEvents.fromTrigger('Contact', Trigger.operationType, Trigger.isDelete ? Trigger.oldMap.keySet() : Trigger.newMap.keySet());
}
