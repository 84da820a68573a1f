/** Sends sfsync a signed change event for the Leads of each committed insert, update, delete and undelete. */
trigger SfsyncLeadEvents on Lead (after insert, after update, after delete, after undelete) {
    SfsyncEvents.fromTrigger('Lead', Trigger.operationType, Trigger.isDelete ? Trigger.oldMap.keySet() : Trigger.newMap.keySet());
}
